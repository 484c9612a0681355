"""Backbone behaviour: causality, padding, the shared item table and the loss's candidate set."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax.models import GRU4Rec, SASRec, padded_vocab
from dpr_jax.train.loss import full_softmax_ce

MODELS = {
    "sasrec": lambda: SASRec(vocab_size=40, max_len=12, embed_dim=16, mlp_dim=32, num_heads=2),
    "gru4rec": lambda: GRU4Rec(vocab_size=40, max_len=12, embed_dim=16, gru_dim=24),
}


def _init(model):
  return nn.unbox(model.init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32)))


@pytest.mark.parametrize("name", MODELS)
def test_future_items_do_not_change_earlier_outputs(name):
  model = MODELS[name]()
  params = _init(model)
  seq = jnp.array([[0, 0, 0, 5, 7, 9, 11, 13, 2, 4, 6, 8]])
  changed = seq.at[0, 8].set(30)
  h1, h2 = model.apply(params, seq), model.apply(params, changed)
  np.testing.assert_allclose(h1[:, :8], h2[:, :8], atol=1e-6)
  assert not np.allclose(h1[:, 8:], h2[:, 8:], atol=1e-4)  # the change is visible after it


@pytest.mark.parametrize("name", MODELS)
def test_more_left_padding_leaves_the_user_vector_unchanged(name):
  model = MODELS[name]()
  params = _init(model)
  short = jnp.array([[0, 0, 0, 0, 0, 0, 3, 4, 5, 6, 7, 8]])
  shifted = jnp.array([[0, 0, 0, 0, 0, 0, 0, 0, 5, 6, 7, 8]])
  with_history = model.apply(params, short)[:, -1]
  # Same last items but different history must differ, same sequence gives the same vector.
  assert not np.allclose(with_history, model.apply(params, shifted)[:, -1], atol=1e-4)
  np.testing.assert_allclose(with_history, model.apply(params, short)[:, -1], atol=1e-6)
  padded_batch = jnp.concatenate([short, shifted])
  np.testing.assert_allclose(model.apply(params, padded_batch)[:1, -1], with_history, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_dropout_is_active_only_in_training(name):
  model = MODELS[name]()
  params = _init(model)
  seq = jnp.array([[0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]])
  a = model.apply(params, seq, deterministic=False, rngs={"dropout": jax.random.key(1)})
  b = model.apply(params, seq, deterministic=False, rngs={"dropout": jax.random.key(2)})
  assert not np.allclose(a, b)
  np.testing.assert_allclose(model.apply(params, seq), model.apply(params, seq))


def test_loss_excludes_padding_rows_and_positions():
  rng = np.random.default_rng(0)
  num_items, vocab = 10, padded_vocab(10, 8)
  assert vocab == 16
  h = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
  table = jnp.asarray(rng.normal(size=(vocab, 4)), jnp.float32)
  targets = jnp.array([[0, 3, 10], [1, 0, 2]])
  loss, count = full_softmax_ce(h, table, targets, num_items)
  logits = np.einsum("bld,vd->blv", h, table)[..., 1:num_items + 1]  # only real items compete
  want = []
  for b, l in zip(*np.nonzero(np.asarray(targets))):
    row = logits[b, l]
    want.append(np.log(np.exp(row).sum()) - row[targets[b, l] - 1])
  assert float(count) == 4
  np.testing.assert_allclose(float(loss), np.mean(want), rtol=1e-5)


def test_parameters_carry_logical_axis_names():
  boxed = MODELS["sasrec"]().init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32))
  specs = nn.get_partition_spec(boxed)["params"]
  assert tuple(specs["item_embed"]["embedding"]) == ("vocab", "embed")
  assert tuple(specs["block_0"]["FeedForward_0"]["Dense_0"]["kernel"]) == ("embed", "mlp")


@pytest.mark.parametrize("shape", [(512, 1024), (999, 1001)])  # even last axis, and odd sizes
def test_dropout_drops_at_the_rate_and_stays_unbiased(shape):
  from dpr_jax.models.layers import Dropout
  x = jnp.ones(shape)
  y = np.asarray(Dropout(0.3).apply({}, x, False, rngs={"dropout": jax.random.key(0)}))
  kept = y != 0
  n = kept.size
  assert abs(kept.mean() - 0.7) < 4 * np.sqrt(0.21 / n)  # 4 standard errors
  np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
  assert abs(y.mean() - 1.0) < 4 * np.sqrt(0.21 / n) / 0.7
  # Neighbours along either axis are independent: P(both kept) = 0.49.
  for both in (kept[:, 1:] & kept[:, :-1], kept[1:] & kept[:-1]):
    assert abs(both.mean() - 0.49) < 4 * np.sqrt(0.49 * 0.51 / both.size)
  np.testing.assert_array_equal(Dropout(0.3).apply({}, x, True), x)
  np.testing.assert_array_equal(Dropout(0.0).apply({}, x, False), x)


def test_dropout_masks_differ_between_keys_and_call_sites():
  from dpr_jax.models.layers import Dropout, hashed_bits

  class Two(nn.Module):
    @nn.compact
    def __call__(self, x):
      return Dropout(0.5)(x, False), Dropout(0.5)(x, False)

  x = jnp.ones((256, 256))
  a1, b1 = Two().apply({}, x, rngs={"dropout": jax.random.key(0)})
  a2, _ = Two().apply({}, x, rngs={"dropout": jax.random.key(1)})
  a3, _ = Two().apply({}, x, rngs={"dropout": jax.random.key(0)})
  np.testing.assert_array_equal(a1, a3)  # a function of the key
  for other in (b1, a2):  # agree on about half of the elements, as independent masks do
    assert abs(float(jnp.mean((a1 != 0) == (other != 0))) - 0.5) < 0.01
  # The bits are uniform: each of the 16 values of the top nibble within 2% of 1/16.
  bits = np.asarray(hashed_bits(jax.random.key(5), (1 << 20,)))
  counts = np.bincount(bits >> 28, minlength=16) / bits.size
  np.testing.assert_allclose(counts, 1 / 16, rtol=0.02)  # 5 standard errors
  assert len(np.unique(bits)) == bits.size  # distinct indices, distinct values (a bijection)


@pytest.mark.parametrize("rows,inp,out", [(64, 8, 24), (64, 24, 8), (63, 16, 16)])
def test_layer_products_have_the_plain_values_and_gradients(rows, inp, out):
  """layer_dot_general (split weight gradients on a CPU device) is lax.dot_general: for a
  Dense with more outputs than inputs, fewer, and an odd row count (no split)."""
  from dpr_jax.models.layers import layer_dot_general
  rng = np.random.default_rng(0)
  shape = (2, rows // 2, inp) if rows % 2 == 0 else (1, rows, inp)  # rows x: N = rows
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  w = jnp.asarray(rng.normal(size=(inp, out)), jnp.float32)
  dims = (((2,), (0,)), ((), ()))
  results = []
  for dot in (layer_dot_general, jax.lax.dot_general):
    f = jax.jit(lambda x, w, dot=dot: jnp.sum(jnp.sin(dot(x, w, dims))))
    results.append((f(x, w), jax.jit(jax.grad(f, argnums=(0, 1)))(x, w)))
  (v1, (dx1, dw1)), (v2, (dx2, dw2)) = results
  np.testing.assert_allclose(v1, v2, rtol=1e-5)
  np.testing.assert_allclose(dx1, dx2, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dw1, dw2, rtol=1e-5, atol=1e-5)


def test_dense_general_with_layer_products_keeps_its_parameters_and_gradients():
  """The attention's output projection (two contracted axes) through layer_dot_general: the
  same parameter tree as plain DenseGeneral and the same gradients."""
  from dpr_jax.models.layers import layer_dot_general
  x = jnp.asarray(np.random.default_rng(1).normal(size=(10, 2, 4)), jnp.float32)
  plain = nn.DenseGeneral(6, axis=(-2, -1))
  fast = nn.DenseGeneral(6, axis=(-2, -1), dot_general=layer_dot_general)
  params = plain.init(jax.random.key(0), x)
  assert jax.tree.structure(fast.init(jax.random.key(0), x)) == jax.tree.structure(params)
  loss = lambda m: jax.grad(lambda p: jnp.sum(jnp.sin(m.apply(p, x))))(params)
  for a, b in zip(jax.tree.leaves(loss(fast)), jax.tree.leaves(loss(plain))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
