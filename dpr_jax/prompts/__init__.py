"""Natural-language prompts: a frozen sentence encoder turns prompt text into unit vectors.

See :mod:`dpr_jax.prompts.encoder` (``TextEncoder``), a JAX/Flax port of the BERT encoder of
sentence-transformers' all-MiniLM-L6-v2 with mean pooling and L2 normalisation.
"""
