"""Benchmarks: ``python -m dpr_jax.bench <what> [args]`` (``--help`` on each).

    ce     dense vs tiled full-catalogue cross-entropy: loss+grad time and compiled memory
    train  training-step throughput of SASRec, GRU4Rec and the DPR stage-3 step
    eval   users/s of full-ranking evaluation over the whole catalogue
    serve  latency of one prompted request (history + prompt -> top-10) and batched throughput
    moe    dense vs grouped MoE dispatch across expert counts and batch sizes
    scale  catalogue size 3.4k -> 100k -> 1M: step time and peak memory; vocab sharding
    peer   PyTorch SASRec peer against this implementation (dpr_jax/bench/peer.py)

Each suite except ``ce`` writes a JSON record and a Markdown table to ``reports/bench_<backend>/``
(``--out``), with the machine, command, jax version, date and commit (dpr_jax/bench/common.py).
"""
