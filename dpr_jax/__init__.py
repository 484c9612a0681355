"""dpr_jax: Decoupled Promptable Sequential Recommendation in JAX/Flax.

Pipeline, one sub-package per stage:

    data -> (prompts) -> models -> train -> eval -> (serving)
"""

__version__ = "0.1.0"
