"""SASRec's causal self-attention core, with every product contracting the leading axes.

Why this layout: XLA:CPU hands a batched product that contracts the operands' *last* axes
(``[N, Q, K] x [N, S, K]``: the form of every attention product as ``einsum`` and autodiff
write them) to its XNNPACK (YNN) fusion, which runs each batched product on one thread; a
batched product that contracts the *first* non-batch axis of both operands (``[N, C, I] x
[N, C, J] -> [N, I, J]``, :func:`_lead`) goes to Eigen, which splits it over the cores. So the
scores are kept keys-major (``[N, S, Q]``, the softmax over axis 1), which makes the value
product a leading-axis product with no transpose of the weights, and the training backward is
written out (a ``custom_vjp``) so that its four products are leading-axis products too. On the
2-core CPU: a training step -3%, full-ranking evaluation -8% (``reports/perf_log.md``,
2026-12-05 (later)). Not measured on accelerators, whose products take either layout.

The same functions as the plain formulations (``tests/test_attention.py`` checks values and
gradients against them), and the same dropout masks: the training weights' mask for query
block i comes from the key of the call site ``Dropout_i`` (:meth:`layers.Dropout.key`) at the
element's index in the query-major ``[B, H, Qi, end]`` array, as ``layers.Dropout`` would draw it
there, and is redrawn, not stored, in the backward pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from dpr_jax.models.layers import dropout_threshold, hashed_bits_at

Array = jax.Array
_NEG = -1e9


def _lead(a: Array, b: Array, dtype=None) -> Array:
  """out[N, I, J] = sum_c a[N, c, I] * b[N, c, J]: contracts axis 1 of both operands."""
  return jax.lax.dot_general(a, b, (((1,), (1,)), ((0,), (0,))), preferred_element_type=dtype)


def _t(a: Array) -> Array:
  """[N, X, Y] -> [N, Y, X]."""
  return jnp.swapaxes(a, 1, 2)


def _keep(key: Array, n: int, keys: int, queries: int, rate: float) -> tuple[Array, float]:
  """(bool[n, keys, queries] kept weights, the scale of a kept one): the mask ``layers.Dropout``
  draws for the query-major float[n, queries, keys], laid out keys-major."""
  threshold, scale = dropout_threshold(rate)
  index = (jax.lax.broadcasted_iota(jnp.uint32, (n, keys, queries), 0) * jnp.uint32(queries)
           + jax.lax.broadcasted_iota(jnp.uint32, (n, keys, queries), 2)) * jnp.uint32(keys) \
      + jax.lax.broadcasted_iota(jnp.uint32, (n, keys, queries), 1)
  return hashed_bits_at(key, index) >= jnp.uint32(threshold), scale


def _dropout(x: Array, key: Array | None, rate: float) -> Array:
  """Inverted dropout of keys-major weights float[N, S, Q] (identity when ``key`` is None)."""
  if key is None:
    return x
  keep, scale = _keep(key, *x.shape, rate)
  return jnp.where(keep, x * jnp.asarray(scale, x.dtype), jnp.zeros((), x.dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _attend(q, k, v, allowed_t, keys, blocks, rate):
  return _attend_fwd(q, k, v, allowed_t, keys, blocks, rate)[0]


def _attend_fwd(q, k, v, allowed_t, keys, blocks, rate):
  """q, k, v [N, L, K]; allowed_t bool[N, L(keys), L(queries)]; keys: one dropout key per block
  or None -> out [N, L, K] (v's dtype)."""
  q_t, k_t = _t(q), _t(k)  # [N, K, L]
  scale = q.shape[-1]**-0.5
  outs, weights = [], []
  for i, (start, end) in enumerate(blocks):
    logits = _lead(k_t[:, :, :end], q_t[:, :, start:end], jnp.float32) * scale  # [N, end, Qi]
    logits = jnp.where(allowed_t[:, :end, start:end], logits, _NEG)
    w = jax.nn.softmax(logits, axis=1)
    dropped = _dropout(w, None if keys is None else keys[i], rate)
    outs.append(_lead(dropped.astype(v.dtype), v[:, :end]))  # [N, Qi, K]
    weights.append(w)
  out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)
  return out, (q, k, v, keys, tuple(weights))


def _attend_bwd(blocks, rate, residuals, g):
  """The four products per block as leading-axis products; g [N, L, K] -> (dq, dk, dv)."""
  q, k, v, keys, weights = residuals
  g_t, v_t = _t(g), _t(v)  # [N, K, L]
  length, scale = q.shape[1], q.shape[-1]**-0.5
  widen = lambda x, end: jnp.pad(x, ((0, 0), (0, length - end), (0, 0)))  # rows end.. are 0
  dq, dk, dv = [], jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32)
  for i, ((start, end), w) in enumerate(zip(blocks, weights)):  # w float32[N, end, Qi]
    key = None if keys is None else keys[i]
    p = _dropout(w, key, rate)  # the weights the forward pass multiplied v by
    dv = dv + widen(_lead(_t(p).astype(g.dtype), g[:, start:end], jnp.float32), end)
    dp = _lead(v_t[:, :, :end], g_t[:, :, start:end], jnp.float32)  # [N, end, Qi]
    dw = _dropout(dp, key, rate)
    dlogits = w * (dw - jnp.sum(dw * w, axis=1, keepdims=True)) * scale  # [N, end, Qi]
    dq.append(_lead(dlogits.astype(k.dtype), k[:, :end]))  # [N, Qi, K]
    dk = dk + widen(_lead(_t(dlogits).astype(q.dtype), q[:, start:end], jnp.float32), end)
  dq = dq[0] if len(dq) == 1 else jnp.concatenate(dq, axis=1)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None


_attend.defvjp(_attend_fwd, _attend_bwd)


def _fold(x: Array) -> Array:
  """[B, L, H, K] -> [B * H, L, K]."""
  b, length, h, d = x.shape
  return jnp.transpose(x, (0, 2, 1, 3)).reshape(b * h, length, d)


def _unfold(x: Array, b: int) -> Array:
  """[B * H, L, K] -> [B, L, H, K]."""
  return jnp.transpose(x.reshape(b, -1, *x.shape[1:]), (0, 2, 1, 3))


def _keys_major(allowed: Array, heads: int) -> Array:
  """bool[B, 1, Q, S] -> bool[B * H, S, Q]."""
  b, _, queries, keys = allowed.shape
  return jnp.broadcast_to(jnp.swapaxes(allowed, -1, -2), (b, heads, keys, queries)).reshape(
      b * heads, keys, queries)


def training_attention(q: Array, k: Array, v: Array, allowed: Array,
                       blocks: list[tuple[int, int]], rate: float,
                       keys: list[Array] | None) -> Array:
  """softmax(q k^T / sqrt(K), masked) v with dropout on the weights, in causal query blocks.

  The queries start:end of each block see the keys :end only, so the blocks above the diagonal
  (all masked) are never computed.

  Args:
    q, k, v: float[B, L, H, K].
    allowed: bool[B, 1, L, L] (queries x keys, broadcast over heads), causal.
    blocks: [(start, end)] contiguous query blocks covering 0..L (``causal_query_blocks``).
    rate: dropout on the attention weights, in [0, 1).
    keys: one dropout key per block (``layers.Dropout.key``), or None for no dropout.
  Returns:
    float[B, L, H, K], v's dtype.
  """
  b, _, h, _ = q.shape
  keys = None if rate == 0.0 or keys is None else tuple(keys)
  out = _attend(_fold(q), _fold(k), _fold(v), _keys_major(allowed, h), keys, tuple(blocks),
                float(rate))
  return _unfold(out, b)


def inference_attention(q: Array, k: Array, v: Array, allowed: Array) -> Array:
  """Attention without dropout, normalised after the value product (the division runs over
  float[B, Q, H, K] instead of the weights: one pass over the largest array less).

  Args:
    q: float[B, Q, H, K] (Q = L, or 1: the last position only).
    k, v: float[B, L, H, K].
    allowed: bool[B, 1, Q, L].
  Returns:
    float[B, Q, H, K], v's dtype.
  """
  b, _, h, d = q.shape
  logits = _lead(_t(_fold(k)), _t(_fold(q)), jnp.float32) * d**-0.5  # [BH, L, Q] keys-major
  logits = jnp.where(_keys_major(allowed, h), logits, _NEG)
  unnormalised = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, 1, keepdims=True)))
  out = _lead(unnormalised.astype(v.dtype), _fold(v), jnp.float32)  # [BH, Q, K]
  out = out / jnp.sum(unnormalised, axis=1)[..., None]
  return _unfold(out.astype(v.dtype), b)
