"""Ranking metrics from the target's rank, computed without sorting the catalogue.

With one target per user, the target's 0-based rank is the number of competing items scored
above it. Ties are counted against the target (pessimistic): a model that scores everything
equally gets the worst rank, not the best. Then

    Recall@k = [rank < k]            NDCG@k = [rank < k] / log2(rank + 2)

Cost: O(users x items) compares and one reduction, instead of a sort per user.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def target_rank(scores: Array, targets: Array, candidates: Array) -> Array:
  """0-based rank of each target among candidate items.

  Args:
    scores: float[B, V].
    targets: int[B], item ids (must be candidates).
    candidates: bool[B, V] or bool[V]: which items compete (False: masked out).
  Returns:
    int32[B].
  """
  with jax.named_scope("target_rank"):
    target_scores = jnp.take_along_axis(scores, targets[:, None], axis=1)  # [B, 1]
    ids = jnp.arange(scores.shape[1])[None, :]
    ahead = (scores > target_scores) | ((scores == target_scores) & (ids != targets[:, None]))
    return jnp.sum(ahead & candidates, axis=1, dtype=jnp.int32)


def metrics_at_k(rank: Array, ks: tuple[int, ...]) -> dict[str, Array]:
  """{"recall@k", "ndcg@k"}: float32[B] per k."""
  out = {}
  for k in ks:
    hit = rank < k
    out[f"recall@{k}"] = hit.astype(jnp.float32)
    out[f"ndcg@{k}"] = jnp.where(hit, 1.0 / jnp.log2(rank.astype(jnp.float32) + 2.0), 0.0)
  return out
