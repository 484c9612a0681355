"""Retrieval: scoring the catalogue in the retrieval space -- the one place for it.

Every ranking of the project (stage-1 evaluation, stage-3 losses, the steering evaluation,
serving, the benchmarks) scores a user the same way: a (possibly steered) user vector u against
the item table E, plus, for a steered request, a bias per tag against the items' tags,

    scores = u @ E^T + tag_bias @ tags^T        float32[B, V]

and items that must not be ranked (padding rows, seen items, a filter) are set to :data:`NEG`.
The steering composition that produces (u, tag_bias) lives in :mod:`dpr_jax.models.dpr`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dpr_jax import sharding

Array = jax.Array

# Finite "minus infinity" for masked scores: exp(NEG - m) is 0 and NEG - NEG stays defined, so
# softmaxes and running maxima over fully masked rows do not produce NaN.
NEG = -1e30


def scores(u: Array, table: Array, tag_bias: Array | None = None,
           item_tags: Array | None = None) -> Array:
  """float32[B, V]: ``u @ E^T (+ tag_bias @ tags^T)``.

  Args:
    u: float[B, d] user vectors; table: float[V, d] item table E.
    tag_bias: float[B, T] per-tag bias of each user (a steered request), or None.
    item_tags: float or bool[V, T] multi-hot tags of the items (with ``tag_bias``).
  """
  with jax.named_scope("score_catalogue"):
    s = jnp.einsum("bd,vd->bv", u, table, preferred_element_type=jnp.float32)
    if tag_bias is not None:
      s = s + jnp.einsum("bt,vt->bv", tag_bias.astype(jnp.float32),
                         item_tags.astype(jnp.float32))
    return s


def mask(s: Array, allowed: Array) -> Array:
  """``s`` with the entries not ``allowed`` (bool, broadcast to s) at :data:`NEG`."""
  return jnp.where(allowed, s, NEG)


def top_k(s: Array, allowed: Array, k: int) -> tuple[Array, Array]:
  """(scores float32[B, k], items int32[B, k]) of the k best allowed items (each ``data`` shard
  of users on its own devices inside a sharded step: ``sharding.top_k``)."""
  return sharding.top_k(mask(s, allowed), k)
