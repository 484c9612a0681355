"""Non-learned reference points for the sequential task."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax.data.split import SplitData
from dpr_jax.eval.ranking import average, eval_batches, rank_metrics, seen_mask


def popularity_counts(data: SplitData) -> np.ndarray:
  """float32[N + 1]: how often each item occurs in the training parts (validation inputs)."""
  return np.bincount(data.valid_inputs.ravel(), minlength=data.num_items + 1).astype(np.float32)


def evaluate_scores(data: SplitData, split: str, item_scores: np.ndarray, ks=(10, 20),
                    batch_size: int = 512) -> dict[str, float]:
  """Full-ranking metrics of one fixed score per item (the same list for every user)."""
  scores_row = jnp.asarray(item_scores)[None, :]  # [1, N + 1]

  @jax.jit
  def step(batch):
    scores = jnp.broadcast_to(scores_row, (batch["targets"].shape[0], scores_row.shape[1]))
    seen = seen_mask(batch["history"], batch["seen_len"], batch["targets"], scores.shape[1])
    return rank_metrics(scores, batch["targets"], seen, batch["weight"], data.num_items, ks)

  return average(step(batch) for batch in eval_batches(data, split, batch_size))
