"""Concluded experiment, off by default: an L2 loss on a negative example's other tag coordinates.

    python -m dpr_jax.launch --config configs/experiments/focus_loss.py:dpr

configs/ml1m_sasrec.py with ``stage3.focus_weight=1``, in its own run folder. Why it is off:
configs/experiments/README.md.
"""

import pathlib

from dpr_jax.config import variant


def get_config(arg: str | None = None):
  return variant(pathlib.Path(__file__).parents[1] / "ml1m_sasrec.py", arg,
                 "runs/ml1m_sasrec_focus_loss", {"stage3.focus_weight": 1.0})
