"""Full cross-entropy over the whole catalogue at every position (no sampled negatives).

Two implementations of the same loss:

* :func:`full_softmax_ce`: dense reference; materialises the [B, L, V] logits (and, under
  ``jax.grad``, a softmax of the same size), so it needs O(B * L * V) memory.
* :func:`tiled_softmax_ce`: scans over vocabulary tiles with an online logsumexp and a
  ``jax.custom_vjp`` backward that recomputes each tile's logits from the saved logsumexp;
  memory is O(B * L * tile + V * d). With 1M items, B=128, L=200 the dense logits alone would
  be ~100 GB.

:func:`softmax_ce` is the entry point: it picks one of the two by the size of the logits.
:func:`compact_softmax_ce` applies it to the supervised positions only (static-size buffer).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from dpr_jax import sharding
from dpr_jax.models import retrieval, valid_item_mask

Array = jax.Array

# softmax_ce(tiled=None) uses the tiled loss when the logits would have more elements than this:
# 2**24 float32 elements = 64 MiB. Measured on CPU (reports/perf_log.md) the tiled loss is
# faster already at ML-1M size (N = 6,400..25,600 rows, V = 3,456): it never writes the logits
# and their softmax to memory. Small problems (tests, tiny configs) keep the dense loss.
TILED_CE_THRESHOLD = 2**24

# Default vocabulary tile: the scans hold a few float32[N, tile] arrays at a time.
DEFAULT_TILE_SIZE = 4096

# On CPU the one-tile loss's forward rule runs over row chunks of this many positions (a scan that
# adds up the item gradient): XLA:CPU maps every large buffer afresh each call, so one
# [N, V] product runs at about half the rate of [512, V] ones. Measured (reports/perf_log.md,
# 2026-11-29; N = 15,616, V = 3,416, d = 128, value + gradients): 322 ms whole, 252 ms in chunks
# of 512, 258 ms of 1,024, 282 ms of 2,048. Accelerators keep the single product (0).
CPU_ROW_CHUNK = 512

_NEG = retrieval.NEG  # keeps exp(m_old - m_new) defined when both are masked


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
    # The table is cast to h's compute dtype (bf16 matmul when h is bf16); logits are float32.
    logits = jnp.einsum("bld,vd->blv", h, table.astype(h.dtype),
                        preferred_element_type=jnp.float32)  # [B, L, V]
    logits = retrieval.mask(logits, valid_item_mask(table.shape[0], num_items))
    lse = jax.nn.logsumexp(logits, axis=-1)  # [B, L]
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    weight = (targets > 0).astype(jnp.float32)
    count = jnp.sum(weight)
    return jnp.sum((lse - target_logit) * weight) / jnp.maximum(count, 1.0), count


def _tiles(items: Array, tile: int) -> tuple[Array, Array | None]:
  """Zero-pads items[R, d] to a multiple of tile rows and splits it.

  Returns:
    (tiles float[T, tile, d], valid bool[T, tile] marking the real rows, or None when R is a
    multiple of tile: then no tile needs masking, which saves a pass over every [N, tile]
    block of logits).
  """
  r, d = items.shape
  num_tiles = -(-r // tile)
  if num_tiles * tile == r:
    return items.reshape(num_tiles, tile, d), None
  padded = jnp.pad(items, ((0, num_tiles * tile - r), (0, 0)))  # [T * tile, d]
  valid = (jnp.arange(num_tiles * tile) < r).reshape(num_tiles, tile)
  return padded.reshape(num_tiles, tile, d), valid


def _tile_logits(h: Array, tile_rows: Array, valid: Array | None) -> Array:
  """float32[N, tile] logits of one tile, _NEG at padded rows."""
  logits = jnp.einsum("nd,td->nt", h, tile_rows, preferred_element_type=jnp.float32)  # [N, tile]
  return logits if valid is None else jnp.where(valid, logits, _NEG)


def _lse_forward(h: Array, items: Array, tile: int) -> Array:
  """float32[N]: logsumexp over the rows of h[N, d] @ items[R, d].T, one tile at a time."""
  tiles, valid = _tiles(items, tile)

  def body(carry, xs):
    m, s = carry  # running max, running sum of exp(logit - m); float32[N] each
    tile_rows, tile_valid = xs
    logits = _tile_logits(h, tile_rows, tile_valid)  # [N, tile]
    m_new = jnp.maximum(m, jnp.max(logits, axis=-1))
    s = s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(logits - m_new[:, None]), axis=-1)
    return (m_new, s), None  # padded rows: exp(_NEG - m) == 0

  n = h.shape[0]
  init = (jnp.full((n,), _NEG, jnp.float32), jnp.zeros((n,), jnp.float32))
  (m, s), _ = jax.lax.scan(body, init, (tiles, valid))
  return m + jnp.log(s)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _tiled_lse(h: Array, items: Array, tile: int) -> Array:
  """float32[N] logsumexp of h[N, d] @ items[R, d].T over all R rows (custom VJP)."""
  return _lse_forward(h, items, tile)


def _tiled_lse_fwd(h, items, tile):
  lse = _lse_forward(h, items, tile)
  return lse, (h, items, lse)


def _tiled_lse_bwd(tile, res, g):
  """d lse_n / d h_n = sum_r p_nr e_r and d lse_n / d e_r = p_nr h_n, p = softmax; weighted by g.

  Recomputes every tile's logits from the saved lse, so only float32[N, tile] temporaries live.
  """
  h, items, lse = res
  tiles, valid = _tiles(items, tile)
  compute_dtype = jnp.result_type(h.dtype, items.dtype)
  g = g.astype(jnp.float32)

  def body(dh, xs):
    tile_rows, tile_valid = xs
    logits = _tile_logits(h, tile_rows, tile_valid)  # [N, tile]
    gp = (jnp.exp(logits - lse[:, None]) * g[:, None]).astype(compute_dtype)  # [N, tile]
    dh = dh + jnp.einsum("nt,td->nd", gp, tile_rows, preferred_element_type=jnp.float32)
    d_tile = jnp.einsum("nt,nd->td", gp, h, preferred_element_type=jnp.float32)  # [tile, d]
    return dh, d_tile

  dh, d_tiles = jax.lax.scan(body, jnp.zeros(h.shape, jnp.float32), (tiles, valid))
  d_items = d_tiles.reshape(-1, items.shape[1])[:items.shape[0]]  # [R, d]
  return dh.astype(h.dtype), d_items.astype(items.dtype)


_tiled_lse.defvjp(_tiled_lse_fwd, _tiled_lse_bwd)


@jax.custom_vjp
def _one_tile_weighted_lse(h: Array, items: Array, weight: Array) -> Array:
  """float32[]: sum_n weight_n * logsumexp_r(h_n . items_r), for items that fit one tile.

  The multi-tile VJP needs the final logsumexp before any gradient, so it computes the logits
  twice (forward, then again in the backward). With one tile the forward rule has everything
  at once: it computes the logits once and returns the gradients as residuals, so a training
  step does three catalogue-sized matmuls instead of four. (Evaluated without
  differentiation, only the logsumexp is computed.) On CPU the forward rule runs over chunks of
  :data:`CPU_ROW_CHUNK` rows. ``weight`` float32[N] is not differentiated.
  """
  logits = jnp.einsum("nd,rd->nr", h, items, preferred_element_type=jnp.float32)
  return jnp.sum(jax.nn.logsumexp(logits, axis=-1) * weight)


def _lse_and_grads(h, items, weight, h_t=None):
  """(sum_n weight_n lse_n, dh float32[N, d], d_items) of one block of rows.

  d_items is float32[R, d]; or, when ``h_t`` (h transposed, [d, N], laid out as such) is given,
  float32[d, R] = h_t @ softmax: a plain row-major product, which XLA:CPU hands to its XNNPACK
  kernels instead of the transposed-operand product that contracts the rows' leading axis
  (reports/perf_log.md, 2026-12-05 (third)).
  """
  logits = jnp.einsum("nd,rd->nr", h, items, preferred_element_type=jnp.float32)  # [N, R]
  m = jnp.max(logits, axis=-1, keepdims=True)
  e = jnp.exp(logits - m)  # [N, R]
  s = jnp.sum(e, axis=-1, keepdims=True)
  lse = (m + jnp.log(s))[:, 0]  # [N]
  compute_dtype = jnp.result_type(h.dtype, items.dtype)
  gp = (e * (weight[:, None] / s)).astype(compute_dtype)  # weight * softmax, [N, R]
  dh = jnp.einsum("nr,rd->nd", gp, items, preferred_element_type=jnp.float32)
  if h_t is None:
    d_items = jnp.einsum("nr,nd->rd", gp, h, preferred_element_type=jnp.float32)
  else:
    d_items = jnp.einsum("dn,nr->dr", h_t, gp, preferred_element_type=jnp.float32)
  return jnp.sum(lse * weight), dh, d_items


def _one_tile_weighted_lse_fwd(h, items, weight):
  n, d = h.shape
  rows = CPU_ROW_CHUNK if jax.default_backend() == "cpu" else 0
  if not 0 < rows < n:
    total, dh, d_items = _lse_and_grads(h, items, weight)
  else:  # row chunks (CPU_ROW_CHUNK); padding rows have weight 0: no loss, no gradient.
    # Chunk j holds the rows i * K + j, so rows sharded over devices stay sharded in every chunk.
    pad = (-n) % rows
    hp = jnp.swapaxes(jnp.pad(h, ((0, pad), (0, 0))).reshape(rows, -1, d), 0, 1)  # [K, rows, d]
    wp = jnp.swapaxes(jnp.pad(weight, (0, pad)).reshape(rows, -1), 0, 1)  # [K, rows]
    hp_t = jnp.swapaxes(hp, 1, 2)  # [K, d, rows]: each chunk's h^T, one transpose up front

    def body(d_items_t, xs):
      h_chunk, h_chunk_t, w_chunk = xs
      total, dh, d_chunk_t = _lse_and_grads(h_chunk, items, w_chunk, h_chunk_t)
      return d_items_t + d_chunk_t, (total, dh)

    d_items_t, (totals, dh) = jax.lax.scan(
        body, jnp.zeros(items.shape[::-1], jnp.float32), (hp, hp_t, wp))  # [d, R]
    total, dh, d_items = jnp.sum(totals), jnp.swapaxes(dh, 0, 1).reshape(-1, d)[:n], d_items_t.T
  return total, (dh.astype(h.dtype), d_items.astype(items.dtype))


def _one_tile_weighted_lse_bwd(res, g):
  dh, d_items = res
  return (g * dh).astype(dh.dtype), (g * d_items).astype(d_items.dtype), None


_one_tile_weighted_lse.defvjp(_one_tile_weighted_lse_fwd, _one_tile_weighted_lse_bwd)


def tiled_softmax_ce(h: Array, table: Array, targets: Array, num_items: int,
                     tile_size: int = DEFAULT_TILE_SIZE) -> tuple[Array, Array]:
  """:func:`full_softmax_ce` without materialising the [B, L, V] logits.

  The loss at a position is lse - <h, e_target>. The logsumexp runs as a scan over vocabulary
  tiles with a running max and sum-exp (custom VJP: the backward rescans the tiles, recomputing
  the logits from the saved lse); the target logit is gathered directly, and its gradient (the
  -e_target / -h scatter at the targets) comes from ordinary autodiff of the gather.

  Args:
    h: float[B, L, d] user vectors.
    table: float[V, d] item table; rows 0 and > num_items are excluded from the softmax.
    targets: int[B, L], 0 where there is no target (such positions carry weight 0).
    num_items: static Python int.
    tile_size: item rows per tile; clipped to num_items. When num_items is not a multiple, the
      items are zero-padded to one inside and the padded rows masked (only then is there any
      masking). Memory: a few float32[N, tile].
  Returns:
    (mean loss over positions with a target, number of such positions), both float32 scalars.
  """
  with jax.named_scope("tiled_softmax_ce"):
    d = h.shape[-1]
    h_flat = h.reshape(-1, d)  # [N, d], N = B * L
    t_flat = targets.reshape(-1)  # [N]
    table = table.astype(h.dtype)  # bf16 matmuls when h is bf16; logits and lse stay float32
    # The softmax runs over rows 1..num_items only: slicing them out (a static slice) leaves
    # no row to mask except the zero padding of the last tile, if any.
    items = table[1:int(num_items) + 1]  # [num_items, d]
    tile = max(1, min(int(tile_size), items.shape[0]))
    weight = (t_flat > 0).astype(jnp.float32)
    count = jnp.sum(weight)
    if tile == items.shape[0]:  # one tile: logits computed once, gradients in the forward
      lse_sum = _one_tile_weighted_lse(h_flat, items, weight)
    else:
      lse_sum = jnp.sum(_tiled_lse(h_flat, items, tile) * weight)
    target_rows = jnp.take(table, t_flat, axis=0)  # [N, d]
    target_logit = jnp.einsum("nd,nd->n", h_flat, target_rows, preferred_element_type=jnp.float32)
    return (lse_sum - jnp.sum(target_logit * weight)) / jnp.maximum(count, 1.0), count


def softmax_ce(h: Array, table: Array, targets: Array, num_items: int, *,
               tiled: bool | None = None,
               tile_size: int = DEFAULT_TILE_SIZE) -> tuple[Array, Array]:
  """Full-catalogue cross-entropy; the trainer's entry point.

  Args:
    h, table, targets, num_items: as in :func:`full_softmax_ce`.
    tiled: True for :func:`tiled_softmax_ce`, False for :func:`full_softmax_ce`, None to use the
      tiled one when B * L * V (elements of the logits) exceeds :data:`TILED_CE_THRESHOLD`.
    tile_size: see :func:`tiled_softmax_ce`.
  Returns:
    (mean loss over positions with a target, number of such positions), both float32 scalars.
  """
  if tiled is None:
    tiled = targets.size * table.shape[0] > TILED_CE_THRESHOLD
  if tiled:
    return tiled_softmax_ce(h, table, targets, num_items, tile_size=tile_size)
  return full_softmax_ce(h, table, targets, num_items)


def compact_softmax_ce(h: Array, table: Array, targets: Array, num_items: int, capacity: int, *,
                       groups: int = 1, tiled: bool | None = None,
                       tile_size: int = DEFAULT_TILE_SIZE) -> tuple[Array, Array]:
  """:func:`softmax_ce` computed only at the supervised positions.

  Left-padded batches have no target at many positions (ML-1M at L = 200: ~46% of them), yet
  the dense loss scores every position against the whole catalogue. Here the supervised
  positions are gathered (in order) into a static float[capacity, d] buffer -- slots past their
  count get target 0, i.e. weight 0 -- and only those rows meet the catalogue. Same loss as the
  dense one; only the order of the final sum differs.

  Args:
    h, table, targets, num_items: as in :func:`full_softmax_ce`.
    capacity: static buffer size, >= the batch's supervised positions (those beyond it would be
      dropped): the caller checks, as :class:`dpr_jax.train.packing.TrainSteps` does on the
      host. A capacity >= B * L computes the dense loss.
    groups: G; the batch's B rows form G groups of consecutive rows (the ``data`` shards), each
      gathered into its own C / G slots, so each device compacts its own shard. C must be a
      multiple of G holding every group's supervised positions.
  Returns:
    (mean loss over positions with a target, number of such positions), both float32 scalars.
  """
  d = h.shape[-1]
  h_flat, t_flat = h.reshape(-1, d), targets.reshape(-1)  # [N, d], [N]
  capacity = int(min(capacity, t_flat.shape[0]))
  if capacity < t_flat.shape[0]:
    per = capacity // groups

    def compact(h_g, t_g):  # one group: [N / G, d], [N / G] -> [C / G, d], [C / G]
      supervised = t_g > 0
      (idx,) = jnp.nonzero(supervised, size=per, fill_value=0)
      count = jnp.sum(supervised, dtype=jnp.int32)
      return h_g[idx], jnp.where(jnp.arange(per) < count, t_g[idx], 0)

    with jax.named_scope("compact_head"):
      h_flat, t_flat = jax.vmap(compact)(h_flat.reshape(groups, -1, d),
                                         t_flat.reshape(groups, -1))
      h_flat = sharding.constrain(h_flat, ("batch", None, "embed"))
      h_flat, t_flat = h_flat.reshape(capacity, d), t_flat.reshape(capacity)
  return softmax_ce(h_flat[None], table, t_flat[None], num_items, tiled=tiled,
                    tile_size=tile_size)
