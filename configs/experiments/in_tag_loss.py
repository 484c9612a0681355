"""Concluded experiment, off by default: -log P(target | tag) as a stage-3 loss for positives.

    python -m dpr_jax.launch --config configs/experiments/in_tag_loss.py:dpr

configs/ml1m_sasrec.py with ``stage3.in_tag_weight=1``, in its own run folder. Why it is off:
configs/experiments/README.md.
"""

import pathlib

from dpr_jax.config import variant


def get_config(arg: str | None = None):
  return variant(pathlib.Path(__file__).parents[1] / "ml1m_sasrec.py", arg,
                 "runs/ml1m_sasrec_in_tag_loss", {"stage3.in_tag_weight": 1.0})
