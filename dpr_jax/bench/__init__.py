"""Benchmarks: ``python -m dpr_jax.bench <what> [args]``.

    ce    dense vs tiled full-catalogue cross-entropy: loss+grad time and compiled memory

(The train / eval / serve / moe / scale suites and the PyTorch peer are still to come.)
"""
