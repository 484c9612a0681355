"""SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence.

Design: pre-LayerNorm transformer blocks, learned absolute positions, dropout on embeddings,
attention weights and residual branches, a final LayerNorm, and the item table shared between
input and output. Sequences are left-padded with id 0; padded positions are masked as keys and
zeroed after each block, so they never influence a real position.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dpr_jax.models.layers import ItemEmbedding, partitioned

Array = jax.Array
_NEG = -1e9


class CausalSelfAttention(nn.Module):
  num_heads: int
  dropout: float

  @nn.compact
  def __call__(self, x: Array, key_mask: Array, deterministic: bool) -> Array:
    """x float[B, L, d], key_mask bool[B, L] (True = real item) -> float[B, L, d]."""
    d = x.shape[-1]
    head_dim = d // self.num_heads
    init = nn.initializers.xavier_uniform()
    # No bias: a key bias cancels in the softmax and a value bias is absorbed by the output
    # bias, so their gradients are pure rounding noise that Adam would amplify to full steps.
    qkv = nn.DenseGeneral(
        (3, self.num_heads, head_dim), axis=-1, name="qkv", use_bias=False,
        kernel_init=partitioned(init, ("embed", None, "heads", "kv")))(x)  # [B, L, 3, H, K]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, L, H, K]
    with jax.named_scope("attention"):
      logits = jnp.einsum("bqhk,bshk->bhqs", q, k) * head_dim**-0.5  # [B, H, L, L]
      length = x.shape[1]
      causal = jnp.tril(jnp.ones((length, length), dtype=bool))  # [L, L]
      allowed = causal[None, None] & key_mask[:, None, None, :]  # [B, 1, L, L]
      logits = jnp.where(allowed, logits, _NEG)
      weights = jax.nn.softmax(logits, axis=-1)
      weights = nn.Dropout(self.dropout)(weights, deterministic=deterministic)
      out = jnp.einsum("bhqs,bshk->bqhk", weights, v)  # [B, L, H, K]
    return nn.DenseGeneral(
        d, axis=(-2, -1), name="out",
        kernel_init=partitioned(init, ("heads", "kv", "embed")))(out)


class FeedForward(nn.Module):
  mlp_dim: int
  dropout: float

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    d = x.shape[-1]
    init = nn.initializers.xavier_uniform()
    with jax.named_scope("ffn"):
      y = nn.Dense(self.mlp_dim, kernel_init=partitioned(init, ("embed", "mlp")))(x)
      y = nn.gelu(y)
      y = nn.Dropout(self.dropout)(y, deterministic=deterministic)
      return nn.Dense(d, kernel_init=partitioned(init, ("mlp", "embed")))(y)


class Block(nn.Module):
  num_heads: int
  mlp_dim: int
  dropout: float

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool) -> Array:
    y = CausalSelfAttention(self.num_heads, self.dropout)(nn.LayerNorm()(x), mask, deterministic)
    x = x + nn.Dropout(self.dropout)(y, deterministic=deterministic)
    y = FeedForward(self.mlp_dim, self.dropout)(nn.LayerNorm()(x), deterministic)
    x = x + nn.Dropout(self.dropout)(y, deterministic=deterministic)
    return x * mask[..., None]


class SASRec(nn.Module):
  """SASRec backbone.

  Attributes:
    vocab_size: padded item-table rows V (ids 0 and > num_items are never ranked).
    max_len: L, the longest (left-padded) input sequence.
    embed_dim: d.
  """

  vocab_size: int
  max_len: int
  embed_dim: int = 64
  num_blocks: int = 2
  num_heads: int = 1
  mlp_dim: int = 256
  dropout: float = 0.2

  def setup(self):
    self.item_embed = ItemEmbedding(self.vocab_size, self.embed_dim)
    self.pos_embed = self.param(
        "pos_embedding", partitioned(nn.initializers.normal(0.02), ("position", "embed")),
        (self.max_len, self.embed_dim))
    self.blocks = [Block(self.num_heads, self.mlp_dim, self.dropout, name=f"block_{i}")
                   for i in range(self.num_blocks)]
    self.final_norm = nn.LayerNorm()
    self.embed_dropout = nn.Dropout(self.dropout)

  def __call__(self, seqs: Array, deterministic: bool = True) -> Array:
    """Per-position user vectors.

    Args:
      seqs: int[B, L] item ids, left-padded with 0.
    Returns:
      h: float[B, L, d]; h[:, t] summarises seqs[:, :t+1] and scores the item at t+1.
    """
    mask = seqs > 0  # [B, L]
    x = self.item_embed(seqs) * self.embed_dim**0.5 + self.pos_embed[None, -seqs.shape[1]:]
    x = self.embed_dropout(x, deterministic=deterministic) * mask[..., None]
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    for block in self.blocks:
      x = block(x, mask, deterministic)
    return self.final_norm(x) * mask[..., None]

  def item_table(self) -> Array:
    """float[V, d], the shared item table used for ranking."""
    return self.item_embed.table()
