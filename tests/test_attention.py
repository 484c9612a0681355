"""SASRec's attention core (dpr_jax.models.attention) against the plain formulation: the same
values, gradients and dropout masks, in any number of causal query blocks and heads."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax.models import attention
from dpr_jax.models.layers import Dropout
from dpr_jax.models.sasrec import causal_query_blocks

B, L, K = 3, 12, 8


def _inputs(heads, seed=0):
  rng = np.random.default_rng(seed)
  q, k, v = (jnp.asarray(rng.normal(size=(B, L, heads, K)), jnp.float32) for _ in range(3))
  # Packed-row style masks: causal and block-diagonal over segments that the query blocks cut.
  segments = jnp.asarray(np.sort(rng.integers(0, 3, size=(B, L)), axis=1))
  causal = jnp.tril(jnp.ones((L, L), bool))
  allowed = causal[None, None] & (segments[:, None, :, None] == segments[:, None, None, :])
  return q, k, v, allowed


class Plain(nn.Module):
  """The formulation the module replaces: query-major einsums, softmax over the last axis,
  ``layers.Dropout`` on each block's weights (call sites Dropout_0, Dropout_1, ...)."""
  blocks: tuple
  rate: float

  @nn.compact
  def __call__(self, q, k, v, allowed):
    outs = []
    for start, end in self.blocks:
      logits = jnp.einsum("bqhk,bshk->bhqs", q[:, start:end], k[:, :end]) * K**-0.5
      logits = jnp.where(allowed[..., start:end, :end], logits, -1e9)
      weights = Dropout(self.rate)(jax.nn.softmax(logits, axis=-1), deterministic=False)
      outs.append(jnp.einsum("bhqs,bshk->bqhk", weights, v[:, :end]))
    return jnp.concatenate(outs, axis=1)


class Fast(nn.Module):
  """The same call sites' keys, handed to ``attention.training_attention``."""
  blocks: tuple
  rate: float

  @nn.compact
  def __call__(self, q, k, v, allowed):
    keys = [Dropout(self.rate).key() for _ in self.blocks] if self.rate else None
    return attention.training_attention(q, k, v, allowed, list(self.blocks), self.rate, keys)


@pytest.mark.parametrize("heads,n_blocks,rate", [(1, 1, 0.0), (1, 2, 0.3), (2, 3, 0.3),
                                                 (2, 2, 0.0)])
def test_training_attention_is_the_plain_one_with_the_same_dropout(heads, n_blocks, rate):
  q, k, v, allowed = _inputs(heads)
  blocks = tuple(causal_query_blocks(L, n_blocks))
  cot = jnp.asarray(np.random.default_rng(9).normal(size=(B, L, heads, K)), jnp.float32)
  results = []
  for module in (Plain(blocks, rate), Fast(blocks, rate)):
    f = lambda q, k, v, m=module: m.apply({}, q, k, v, allowed,
                                           rngs={"dropout": jax.random.key(4)})
    out, vjp = jax.vjp(jax.jit(f), q, k, v)
    results.append((out, vjp(cot)))
  (out_p, grads_p), (out_f, grads_f) = results
  np.testing.assert_allclose(out_f, out_p, atol=2e-6, rtol=2e-6)
  for a, b in zip(grads_f, grads_p):  # dq, dk, dv
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)
  if rate:  # dropout really acted: without it the output differs
    no_drop = Plain(blocks, 0.0).apply({}, q, k, v, allowed)
    assert float(jnp.max(jnp.abs(no_drop - out_p))) > 1e-2


@pytest.mark.parametrize("heads,last_only", [(1, False), (2, False), (2, True)])
def test_inference_attention_is_the_softmax_one(heads, last_only):
  q, k, v, allowed = _inputs(heads, seed=1)
  if last_only:
    q, allowed = q[:, -1:], allowed[:, :, -1:]
  plain = lambda q, k, v: jnp.einsum(
      "bhqs,bshk->bqhk", jax.nn.softmax(jnp.where(
          allowed, jnp.einsum("bqhk,bshk->bhqs", q, k) * K**-0.5, -1e9), axis=-1), v)
  fast = lambda q, k, v: attention.inference_attention(q, k, v, allowed)
  np.testing.assert_allclose(jax.jit(fast)(q, k, v), plain(q, k, v), atol=2e-6, rtol=2e-6)
  loss = lambda f: jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(f(*a))), argnums=(0, 1, 2)))
  for a, b in zip(loss(fast)(q, k, v), loss(plain)(q, k, v)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


def test_bfloat16_inputs_give_bfloat16_values_and_gradients():
  q, k, v, allowed = (x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x
                      for x in _inputs(2, seed=2))
  blocks = causal_query_blocks(L, 2)
  f = lambda q, k, v: attention.training_attention(q, k, v, allowed, blocks, 0.3,
                                                   [jax.random.key(0), jax.random.key(1)])
  out, vjp = jax.vjp(f, q, k, v)
  assert out.dtype == jnp.bfloat16
  assert all(g.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(g.astype(jnp.float32))))
             for g in vjp(jnp.ones_like(out)))
