"""Concluded experiment, off by default: stage-3 user vectors computed with dropout on.

    python -m dpr_jax.launch --config configs/experiments/noisy_user_vectors.py:dpr

configs/ml1m_sasrec.py with ``stage3.noisy_user_vectors=True`` and a frozen backbone in stage 3
(the switch concerns precomputed vectors), in its own run folder. Why it is off:
configs/experiments/README.md.
"""

import pathlib

from dpr_jax.config import variant


def get_config(arg: str | None = None):
  return variant(pathlib.Path(__file__).parents[1] / "ml1m_sasrec.py", arg,
                 "runs/ml1m_sasrec_noisy_user_vectors",
                 {"stage3.noisy_user_vectors": True, "stage3.backbone_lr": 0.0})
