"""Building blocks shared by the backbones: the item table and partitioned initialisers."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def partitioned(init, names: tuple[str | None, ...]):
  """An initialiser whose parameter carries logical axis names (see dpr_jax.sharding)."""
  return nn.with_logical_partitioning(init, names)


def padded_vocab(num_items: int, multiple: int) -> int:
  """Rows of the item table: padding id 0, items 1..num_items, then rows up to a multiple.

  Padding the vocab lets its axis shard evenly over the ``model`` mesh axis; rows 0 and
  > num_items are masked out of every softmax and ranking (see :func:`valid_item_mask`).
  """
  v = num_items + 1
  return -(-v // multiple) * multiple


def valid_item_mask(vocab_size: int, num_items: int) -> Array:
  """bool[vocab_size]: True for real items 1..num_items."""
  ids = jnp.arange(vocab_size)
  return (ids >= 1) & (ids <= num_items)


class ItemEmbedding(nn.Module):
  """The item table E, shared by the input embedding and the output (retrieval) layer.

  Attributes:
    vocab_size: padded number of rows, V (see :func:`padded_vocab`).
    embed_dim: d.
  """

  vocab_size: int
  embed_dim: int

  def setup(self):
    self.embedding = self.param(
        "embedding",
        partitioned(nn.initializers.normal(stddev=self.embed_dim**-0.5), ("vocab", "embed")),
        (self.vocab_size, self.embed_dim), jnp.float32)  # [V, d]

  def __call__(self, ids: Array) -> Array:
    """ids int[...] -> float[..., d]; id 0 (padding) maps to a zero vector."""
    emb = jnp.take(self.embedding, ids, axis=0)
    return emb * (ids > 0)[..., None].astype(emb.dtype)

  def table(self) -> Array:
    return self.embedding  # [V, d]
