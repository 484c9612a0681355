"""SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence.

Design: pre-LayerNorm transformer blocks, learned absolute positions, dropout on embeddings,
attention weights and residual branches, a final LayerNorm, and the item table shared between
input and output. Sequences are left-padded with id 0; padded positions are masked as keys and
zeroed after each block, so they never influence a real position.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dpr_jax import sharding
from dpr_jax.models import attention
from dpr_jax.models.layers import Dropout, ItemEmbedding, partitioned, layer_dot_general

Array = jax.Array


class QKVKernel(nn.Module):
  """The attention's query/key/value kernel, float[d, 3, H, K], at ``qkv/kernel`` (the
  parameter of the fused ``DenseGeneral`` it replaces: same path, shape and initial values).

  A module of its own so that ranking can apply parts of it: the last block's keys and values
  at every position, its query at the last position only.
  """

  num_heads: int
  head_dim: int

  @nn.compact
  def __call__(self, d: int) -> Array:
    init = nn.initializers.xavier_uniform(in_axis=0, out_axis=(1, 2, 3))
    return self.param("kernel", partitioned(init, ("embed", None, "heads", "kv")),
                      (d, 3, self.num_heads, self.head_dim))


class CausalSelfAttention(nn.Module):
  num_heads: int
  dropout: float
  dtype: Any = jnp.float32  # compute dtype of the matmuls; the softmax is always float32
  query_blocks: int = 1  # causal query blocks of the training attention (causal_query_blocks)

  @nn.compact
  def __call__(self, x: Array, key_mask: Array | None, deterministic: bool,
               last_only: bool = False, segments: Array | None = None) -> Array:
    """x float[B, L, d], key_mask bool[B, L] (True = real item) -> float[B, Q, d].

    Q = L, or Q = 1 with ``last_only``: only the last position queries (keys and values are
    still every position), which is all a ranking of the next item needs.
    With ``segments`` int32[R, L] (row packing, :meth:`SASRec.packed`), x is float[C, d] with
    C = R * L: rows of L slots, each holding whole sequences one after another; a slot attends
    to the earlier slots of its own segment (``key_mask`` is not used). Returns float[C, d].
    """
    d = x.shape[-1]
    head_dim = d // self.num_heads
    init = nn.initializers.xavier_uniform()
    # No bias: a key bias cancels in the softmax and a value bias is absorbed by the output
    # bias, so their gradients are pure rounding noise that Adam would amplify to full steps.
    kernel = QKVKernel(self.num_heads, head_dim, name="qkv")(d)  # [d, 3, H, K]
    proj = lambda y, w: layer_dot_general(
        y.astype(self.dtype), w.astype(self.dtype), (((y.ndim - 1,), (0,)), ((), ())))
    if last_only:  # keys and values at every position, the query at the last one only
      kv = proj(x, kernel[:, 1:])  # [B, L, 2, H, K]
      q, k, v = proj(x[:, -1:], kernel[:, 0]), kv[:, :, 0], kv[:, :, 1]  # q: [B, 1, H, K]
    elif not deterministic:
      # Training: three products, each output contiguous. The fused [.., 3, H, K] product's
      # strided slices cost copies forward and backward (-10% of the ML-1M step,
      # reports/perf_log.md); inference keeps the fused one (measured no slower there).
      shape = (segments.shape if segments is not None else x.shape[:-1]) + kernel.shape[2:]
      q, k, v = (proj(x, kernel[:, i]).reshape(shape) for i in range(3))  # [B, L, H, K] each
    else:
      qkv = proj(x, kernel)  # [B, L, 3, H, K], or [C, 3, H, K] packed
      if segments is not None:
        qkv = qkv.reshape(segments.shape + qkv.shape[1:])  # [R, L, 3, H, K]: free
      q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, L, H, K]
    length = k.shape[1]
    with jax.named_scope("attention"):
      causal = jnp.tril(jnp.ones((length, length), dtype=bool))[-q.shape[1]:]  # [Q, L]
      if segments is None:
        allowed = causal[None, None] & key_mask[:, None, None, :]  # [B, 1, Q, L]
      else:  # block-diagonal: earlier slots of the same sequence only
        allowed = causal[None, None] & (segments[:, None, :, None] == segments[:, None, None, :])
      if deterministic:
        out = attention.inference_attention(q, k, v, allowed)  # [B, Q, H, K]
      else:
        # Training, in causal query blocks (the blocks above the diagonal are never computed:
        # with n blocks, (n + 1) / 2n of the full square), dropout drawn per block.
        blocks = causal_query_blocks(length, self.query_blocks)
        keys = ([Dropout(self.dropout).key() for _ in blocks]
                if self.dropout > 0.0 else None)  # the call sites Dropout_0, Dropout_1, ...
        out = attention.training_attention(q, k, v, allowed, blocks, self.dropout, keys)
    if segments is not None:
      out = out.reshape((-1,) + out.shape[2:])  # [C, H, K]
    return nn.DenseGeneral(
        d, axis=(-2, -1), name="out", dtype=self.dtype, dot_general=layer_dot_general,
        kernel_init=partitioned(init, ("heads", "kv", "embed")))(out)


class FeedForward(nn.Module):
  mlp_dim: int
  dropout: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    d = x.shape[-1]
    init = nn.initializers.xavier_uniform()
    with jax.named_scope("ffn"):
      y = nn.Dense(self.mlp_dim, dtype=self.dtype, dot_general=layer_dot_general,
                   kernel_init=partitioned(init, ("embed", "mlp")))(x)
      y = nn.gelu(y)
      y = Dropout(self.dropout)(y, deterministic=deterministic)
      return nn.Dense(d, dtype=self.dtype, dot_general=layer_dot_general,
                      kernel_init=partitioned(init, ("mlp", "embed")))(y)


class Block(nn.Module):
  num_heads: int
  mlp_dim: int
  dropout: float
  dtype: Any = jnp.float32
  query_blocks: int = 1  # CausalSelfAttention.query_blocks

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool, last_only: bool = False,
               segments: Array | None = None) -> Array:
    """x float[B, L, d], mask bool[B, L] -> float[B, L, d] (float[B, 1, d] with ``last_only``:
    the last position alone, computed from every position's keys and values).

    With ``segments`` int32[R, L] (see :meth:`SASRec.packed`): x is float[C, d], C = R * L
    slots, and mask bool[C] marks the filled ones; returns float[C, d].
    """
    norm = lambda: nn.LayerNorm(dtype=self.dtype)  # statistics in float32 either way
    y = CausalSelfAttention(self.num_heads, self.dropout, self.dtype, self.query_blocks)(
        norm()(x), None if segments is not None else mask, deterministic, last_only, segments)
    if last_only:
      x, mask = x[:, -1:], mask[:, -1:]
    x = x + Dropout(self.dropout)(y, deterministic=deterministic)
    y = FeedForward(self.mlp_dim, self.dropout, self.dtype)(norm()(x), deterministic)
    x = x + Dropout(self.dropout)(y, deterministic=deterministic)
    return x * mask[..., None]


class SASRec(nn.Module):
  """SASRec backbone.

  ``packs_rows``: :meth:`packed` lays whole sequences into rows of L, so the trainer sizes its
  buffers in rows (``dpr_jax.train.packing.row_length_of``).

  Attributes:
    vocab_size: padded item-table rows V (ids 0 and > num_items are never ranked).
    max_len: L, the longest (left-padded) input sequence.
    embed_dim: d.
    dtype: compute dtype (float32, or bfloat16 for bf16 matmuls on accelerators); parameters
      are float32 either way, attention softmax and the loss run in float32.
    query_blocks: the training attention runs in this many causal query blocks
      (:func:`causal_query_blocks`); the same function, dropout drawn per block.
  """

  vocab_size: int
  max_len: int
  embed_dim: int = 64
  num_blocks: int = 2
  num_heads: int = 1
  mlp_dim: int = 256
  dropout: float = 0.2
  dtype: Any = jnp.float32
  query_blocks: int = 1
  packs_rows = True  # class constant, not a module field

  def setup(self):
    self.item_embed = ItemEmbedding(self.vocab_size, self.embed_dim)
    self.pos_embed = self.param(
        "pos_embedding", partitioned(nn.initializers.normal(0.02), ("position", "embed")),
        (self.max_len, self.embed_dim))
    self.blocks = [Block(self.num_heads, self.mlp_dim, self.dropout, self.dtype,
                         self.query_blocks, name=f"block_{i}") for i in range(self.num_blocks)]
    self.final_norm = nn.LayerNorm(dtype=self.dtype)
    self.embed_dropout = Dropout(self.dropout)

  def __call__(self, seqs: Array, deterministic: bool = True) -> Array:
    """Per-position user vectors.

    Args:
      seqs: int[B, L] item ids, left-padded with 0. Any L <= max_len: positions are counted
        from the end, so removing columns of pure left padding leaves every output unchanged.
    Returns:
      h: float[B, L, d]; h[:, t] summarises seqs[:, :t+1] and scores the item at t+1.
    """
    return self._forward(seqs, deterministic, last_only=False)

  def user_vector(self, seqs: Array) -> Array:
    """float[B, d]: ``self(seqs)[:, -1]`` (deterministic), the ranking query, without the work
    for the other positions in the last block (its queries, attention rows and feed-forward)."""
    return self._forward(seqs, True, last_only=True)[:, -1]

  def packed(self, seqs: Array, capacity: int, deterministic: bool = True, groups: int = 1
             ) -> tuple[Array, Array]:
    """The user vectors of the real (non-padded) positions only, packed into rows.

    Row packing: the batch's sequences are laid whole, one after another, into R = C / L rows
    of L slots, by first-fit decreasing (longest first, each into the first row with room; a
    ``lax.scan`` over the sequences). Every layer then runs on the static float[C, d] buffer
    of slots -- the per-position layers as on any rows, the attention on [R, L] with a
    block-diagonal causal mask (a slot sees the earlier slots of its own sequence). On ML-1M
    (L = 200, ~46% of a left-padded batch is padding) a batch of 128 sequences fits in ~70 rows,
    so the attention, quadratic in the width, runs on ~70 rows of 200 instead of 128, and no
    row permutation is needed between the layers (reports/perf_log.md). Same parameters and,
    without dropout, the same values as ``self(seqs)`` at the real positions (positions are
    the sequence's own, counted from its end; dropout masks are drawn in the packed shape).

    Data parallelism: with ``groups`` = G the batch is packed as G independent groups of B / G
    consecutive sequences, group g into its own C / G slots (rows g * R / G ...). Group g is the
    ``data`` shard g of the batch, so each device lays out and computes its own shard: the slot
    buffer carries the ``batch`` logical axis (split over ``data`` by the rules table) and no
    device needs another's sequences. G = 1 is the single-device layout.

    Args:
      seqs: int[B, L], left-padded; B divisible by ``groups``.
      capacity: static C, a multiple of G * L with, per group, at least as many rows as
        first-fit needs (``dpr_jax.train.packing.first_fit_rows``, checked on the host before
        calling; a sequence that finds no row is dropped).
      groups: G, the number of independently packed groups (the trainer passes the mesh's
        ``data`` size).
    Returns:
      (h float[C, d], idx int32[C]): slot c holds ``self(seqs).reshape(-1, d)[idx[c]]``; empty
      slots have idx = B * L and h = 0.
    """
    b, l = seqs.shape
    if capacity % (l * groups) or b % groups:
      raise ValueError(f"capacity={capacity} must be a multiple of groups * length = {groups} * "
                       f"{l}, and the batch {b} of groups")
    rows = capacity // (l * groups)  # per group
    with jax.named_scope("row_layout"):
      n = jnp.sum(seqs > 0, axis=1, dtype=jnp.int32).reshape(groups, b // groups)
      idx, segments = jax.vmap(lambda n_g: _row_layout(n_g, rows, l))(n)  # [G, C/G] each
      idx = sharding.constrain(idx, ("batch", None))
    ids = jnp.take_along_axis(seqs.reshape(groups, -1), idx, axis=1, mode="fill",
                              fill_value=0)  # [G, C/G]
    pos = self.pos_embed[-l:][idx % l]  # [G, C/G, d]
    valid = idx < (b // groups) * l  # [G, C/G]
    x = (self.item_embed(ids) * self.embed_dim**0.5 + pos).astype(self.dtype)
    x = self.embed_dropout(x, deterministic=deterministic) * valid[..., None]
    x = sharding.constrain(x, ("batch", None, "embed"))
    x, valid = x.reshape(capacity, -1), valid.reshape(capacity)  # group-major slots
    segments = segments.reshape(groups * rows, l)  # group-local ids: rows never mix groups
    for block in self.blocks:
      x = block(x, valid, deterministic, segments=segments)
    group_offset = (jnp.arange(groups, dtype=jnp.int32) * (b // groups) * l)[:, None]
    flat = jnp.where(idx < (b // groups) * l, idx + group_offset, b * l).reshape(capacity)
    return self.final_norm(x) * valid[:, None], flat

  def _forward(self, seqs: Array, deterministic: bool, last_only: bool) -> Array:
    mask = seqs > 0  # [B, L]
    x = self.item_embed(seqs) * self.embed_dim**0.5 + self.pos_embed[None, -seqs.shape[1]:]
    x = x.astype(self.dtype)
    x = self.embed_dropout(x, deterministic=deterministic) * mask[..., None]
    x = sharding.constrain(x, ("batch", "length", "embed"))
    for i, block in enumerate(self.blocks):
      x = block(x, mask, deterministic, last_only and i == len(self.blocks) - 1)
    return self.final_norm(x) * mask[:, -x.shape[1]:, None]

  def item_table(self) -> Array:
    """float[V, d], the shared item table used for ranking."""
    return self.item_embed.table()


def causal_query_blocks(length: int, n: int) -> list[tuple[int, int]]:
  """[(start, end)]: ``n`` contiguous query blocks of near-equal size covering 0..length."""
  n = max(1, min(n, length))
  bounds = [round(i * length / n) for i in range(n + 1)]
  return list(zip(bounds[:-1], bounds[1:]))


def _row_layout(n: Array, rows: int, length: int) -> tuple[Array, Array]:
  """First-fit decreasing layout of one group's sequences into ``rows`` rows of ``length``.

  Args:
    n: int32[Bg] real positions of each sequence of the group.
  Returns:
    (idx int32[rows * length]: for each slot, the flat index into the group's [Bg, L] batch,
    Bg * L for an empty slot; segments int32[rows * length]: the slot's sequence in the group,
    -1 for an empty slot).
  """
  bg, capacity = n.shape[0], rows * length
  order = jnp.argsort(-n, stable=True)  # longest first, ties in batch order

  def first_fit(fill, u):  # fill int32[R]: slots used per row
    fits = fill + n[u] <= length
    row = jnp.argmax(fits)  # the first row with room
    ok = fits[row]
    return fill.at[row].add(jnp.where(ok, n[u], 0)), (jnp.where(ok, row, rows), fill[row])

  _, (row_of, offset_of) = jax.lax.scan(first_fit, jnp.zeros((rows,), jnp.int32), order)
  row = jnp.zeros((bg,), jnp.int32).at[order].set(row_of)  # [Bg]
  offset = jnp.zeros((bg,), jnp.int32).at[order].set(offset_of)
  rel = jnp.arange(length, dtype=jnp.int32)[None, :] - (length - n[:, None])  # index in sequence
  slot = jnp.where((rel >= 0) & (row[:, None] < rows),
                   row[:, None] * length + offset[:, None] + rel, capacity).reshape(-1)
  idx = jnp.full((capacity,), bg * length, jnp.int32).at[slot].set(
      jnp.arange(bg * length, dtype=jnp.int32), mode="drop")
  segments = jnp.full((capacity,), -1, jnp.int32).at[slot].set(
      jnp.repeat(jnp.arange(bg, dtype=jnp.int32), length), mode="drop")
  return idx, segments


def gather_packed(x: Array, idx: Array, groups: int = 1) -> Array:
  """x read at the slots of :meth:`SASRec.packed`: int[C] (0 at empty slots).

  Each group's slots read only that group's rows of x, so with x split over ``data`` the gather
  stays on each device.

  Args:
    x: int[B, L], the batch (e.g. the targets), B = G * Bg.
    idx: int32[C], the flat indices ``packed`` returned (B * L = empty).
    groups: G, as given to ``packed``.
  """
  b, l = x.shape
  per = (b // groups) * l
  local = idx.reshape(groups, -1) - (jnp.arange(groups, dtype=idx.dtype) * per)[:, None]
  return jnp.take_along_axis(x.reshape(groups, per), local, axis=1, mode="fill",
                             fill_value=0).reshape(-1)
