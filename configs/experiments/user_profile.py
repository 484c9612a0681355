"""Concluded experiment, off by default: the experts also read the user's tag profile.

    python -m dpr_jax.launch --config configs/experiments/user_profile.py:dpr

configs/ml1m_sasrec.py with ``dpr.user_profile=True``, in its own run folder. Why it is off:
configs/experiments/README.md.
"""

import pathlib

from dpr_jax.config import variant


def get_config(arg: str | None = None):
  return variant(pathlib.Path(__file__).parents[1] / "ml1m_sasrec.py", arg,
                 "runs/ml1m_sasrec_user_profile", {"dpr.user_profile": True})
