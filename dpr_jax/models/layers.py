"""Building blocks shared by the backbones: the item table, dropout, partitioned initialisers and
the layers' products (their weight gradients split over the cores on CPU)."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dpr_jax import sharding

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


def _fmix32(x: Array) -> Array:
  """MurmurHash3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x85EBCA6B)
  x = x ^ (x >> 13)
  x = x * jnp.uint32(0xC2B2AE35)
  return x ^ (x >> 16)


def hashed_bits(key: Array, shape: tuple[int, ...]) -> Array:
  """uint32[shape] pseudo-random bits: a keyed hash of each element's flat index.

  Two 32-bit seeds come from ``key`` (one small threefry draw); element i gets
  ``fmix32(fmix32(i * 0x9E3779B9 + s0) ^ s1)``. Unlike ``jax.random.bits`` this is a handful of
  elementwise integer operations that XLA fuses into the consumer, so the bits are never
  written to memory. Statistically adequate for dropout masks (a test checks rates and
  correlations), not for anything needing a cryptographic generator. Distinct indices map to
  distinct values under one key for up to 2**32 elements.
  """
  n = 1
  for s in shape:
    n *= s
  if n > 2**32:
    return jax.random.bits(key, shape, jnp.uint32)
  return hashed_bits_at(key, jax.lax.iota(jnp.uint32, n).reshape(shape))


def hashed_bits_at(key: Array, index: Array) -> Array:
  """uint32[...]: the bits :func:`hashed_bits` gives the elements at flat ``index`` uint32[...]
  (so an array's bits can be drawn directly in another layout, e.g. transposed)."""
  seeds = jax.random.bits(key, (2,), jnp.uint32)
  return _fmix32(_fmix32(index * jnp.uint32(0x9E3779B9) + seeds[0]) ^ seeds[1])


def dropout_threshold(rate: float) -> tuple[int, float]:
  """(threshold, scale) of inverted dropout at ``rate``: an element is kept where its
  :func:`hashed_bits` are >= threshold, and a kept element is multiplied by scale."""
  if not 0.0 < rate < 1.0:
    raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
  threshold = min(round(rate * 2**32), 2**32 - 1)
  return threshold, 2**32 / (2**32 - threshold)


class Dropout(nn.Module):
  """Inverted dropout whose mask comes from :func:`hashed_bits` rather than ``jax.random``.

  ``flax.linen.Dropout`` draws its mask with ``jax.random.bernoulli``: on CPU the threefry
  generator writes and rereads 32-bit arrays the size of the activations for 5 loop rounds, and
  that was ~20% of a SASRec training step; with a fused hash the step is as fast as with no
  dropout at all (``reports/perf_log.md``). Same contract as ``flax.linen.Dropout``: the
  "dropout" RNG stream (each call site its own key), identity when ``deterministic`` or
  ``rate == 0``, kept elements scaled so the layer is unbiased.

  Attributes:
    rate: probability of zeroing an element, in [0, 1); realised to within 2**-32.
  """

  rate: float

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    """x float[...] -> float[...] of the same shape and dtype."""
    if deterministic or self.rate == 0.0:
      return x
    threshold, scale = dropout_threshold(self.rate)
    keep = hashed_bits(self.key(), x.shape) >= jnp.uint32(threshold)
    return jnp.where(keep, x * jnp.asarray(scale, x.dtype), jnp.zeros((), x.dtype))

  def key(self) -> Array:
    """This call site's key of the "dropout" stream (what ``__call__`` draws its mask from), for
    code that applies the same mask itself (``dpr_jax.models.attention``)."""
    return self.make_rng("dropout")


# ============================================================ layer products with split weight gradients
def _weight_grad(x: Array, g: Array) -> Array:
  """x^T g: float[N, I] x float[N, J] -> float[I, J], the weight gradient of ``x @ w``.

  As two half-sums over N in one batched product, which Eigen runs on two threads (one product
  contracting N runs on one), and, when I > J, as ``(g^T x)^T``: XLA:CPU's product is ~2x
  faster with the smaller side as output rows; the small result's transpose stays behind an
  optimisation barrier, or XLA folds it back into the product (reports/perf_log.md, 2026-12-05
  (later)).
  """
  n = x.shape[0]
  split = 2 if n % 2 == 0 else 1
  halves = lambda a: a.reshape(split, n // split, a.shape[1])
  batched = (((1,), (1,)), ((0,), (0,)))
  if x.shape[1] > g.shape[1]:
    out = jnp.sum(jax.lax.dot_general(halves(g), halves(x), batched), axis=0)  # [J, I]
    return jax.lax.optimization_barrier(out).T
  return jnp.sum(jax.lax.dot_general(halves(x), halves(g), batched), axis=0)


@jax.custom_vjp
def _matmul(x: Array, w: Array) -> Array:
  """float[N, I] @ float[I, J] -> float[N, J], its weight gradient from :func:`_weight_grad`."""
  return x @ w


def _matmul_fwd(x, w):
  return x @ w, (x, w)


def _matmul_bwd(residuals, g):
  x, w = residuals
  return (g @ w.T).astype(x.dtype), _weight_grad(x, g).astype(w.dtype)


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def layer_dot_general(lhs: Array, rhs: Array, dimension_numbers, precision=None,
                      preferred_element_type=None) -> Array:
  """``lax.dot_general`` for a layer's product, for ``nn.Dense(dot_general=...)`` and
  ``nn.DenseGeneral``: the same values and gradients.

  On a single CPU device, a product ``x [..., I...] . w [I..., J...]`` (x's last axes against w's
  first, same dtypes) takes its weight gradient from :func:`_weight_grad`, which keeps both cores
  busy (a SASRec training step -3%, reports/perf_log.md). Everywhere else -- accelerators,
  meshes of several devices (each device's share is its own product already), other products --
  it is ``lax.dot_general`` itself.
  """
  (lc, rc), (lb, rb) = dimension_numbers
  m = len(lc)
  mesh = sharding.activation_mesh()
  if (lb or rb or tuple(lc) != tuple(range(lhs.ndim - m, lhs.ndim)) or tuple(rc) != tuple(range(m))
      or lhs.dtype != rhs.dtype or jax.default_backend() != "cpu"
      or (mesh is not None and mesh.size > 1)):
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type)
  batch_shape, size = lhs.shape[:lhs.ndim - m], math.prod(lhs.shape[lhs.ndim - m:])
  y = _matmul(lhs.reshape(-1, size), rhs.reshape(size, -1))
  return y.reshape(batch_shape + rhs.shape[m:])
