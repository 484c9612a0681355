"""Full cross-entropy over the whole catalogue at every position (no sampled negatives)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dpr_jax.models import valid_item_mask

Array = jax.Array


def full_softmax_ce(h: Array, table: Array, targets: Array, num_items: int) -> tuple[Array, Array]:
  """Mean next-item cross-entropy over the real positions.

  Args:
    h: float[B, L, d] user vectors.
    table: float[V, d] item table; rows 0 and > num_items are excluded from the softmax.
    targets: int[B, L], 0 where there is no target.
  Returns:
    (mean loss over positions with a target, number of such positions), both float32 scalars.
  """
  with jax.named_scope("full_softmax_ce"):
    logits = jnp.einsum("bld,vd->blv", h, table, preferred_element_type=jnp.float32)  # [B, L, V]
    logits = jnp.where(valid_item_mask(table.shape[0], num_items), logits, -1e30)
    lse = jax.nn.logsumexp(logits, axis=-1)  # [B, L]
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    weight = (targets > 0).astype(jnp.float32)
    count = jnp.sum(weight)
    return jnp.sum((lse - target_logit) * weight) / jnp.maximum(count, 1.0), count
