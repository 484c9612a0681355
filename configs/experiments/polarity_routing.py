"""The MoE ablation's reference: two experts picked by the request's polarity, no router.

    python -m dpr_jax.launch --config configs/experiments/polarity_routing.py:dpr

configs/ml1m_sasrec.py with ``dpr.routing="polarity"`` (2 experts, top 1), in its own run folder.
Measured against the learned router by ``python -m dpr_jax.bench moe``; see
configs/experiments/README.md.
"""

import pathlib

from dpr_jax.config import variant


def get_config(arg: str | None = None):
  return variant(pathlib.Path(__file__).parents[1] / "ml1m_sasrec.py", arg,
                 "runs/ml1m_sasrec_polarity_routing",
                 {"dpr.routing": "polarity", "dpr.num_experts": 2, "dpr.top_k": 1})
