"""Fast paths that must not change results: the last-position user vector, trimmed evaluation
batches, the compacted output head and the bf16 compute switch."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax import sharding
from dpr_jax.data.prepare import prepare
from dpr_jax.eval.ranking import (
    Evaluator,
    chunked,
    eval_batches,
    length_buckets,
    make_eval_step,
    resolve_chunk,
)
from dpr_jax.models import GRU4Rec, SASRec, build_backbone

MODELS = {
    "sasrec": lambda: SASRec(vocab_size=40, max_len=12, embed_dim=16, mlp_dim=32, num_heads=2),
    "gru4rec": lambda: GRU4Rec(vocab_size=40, max_len=12, embed_dim=16, gru_dim=24),
}


@pytest.mark.parametrize("name", MODELS)
def test_user_vector_is_the_last_position(name):
  model = MODELS[name]()
  params = nn.unbox(model.init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32)))
  seqs = jnp.array([[0, 0, 0, 5, 7, 9, 11, 13, 2, 4, 6, 8], [0] * 9 + [3, 1, 2],
                    list(range(20, 32))])
  forward = jax.jit(lambda p, s: model.apply(p, s))  # (jitted: eager SASRec is slow)
  user_vector = jax.jit(lambda p, s: model.apply(p, s, method=model.user_vector))
  want = forward(params, seqs)[:, -1]
  got = user_vector(params, seqs)
  assert got.shape == (3, 16)
  np.testing.assert_allclose(got, want, atol=1e-5)
  # Trimming left padding leaves it unchanged.
  np.testing.assert_allclose(user_vector(params, seqs[1:2, -4:]), want[1:2], atol=1e-5)


def test_gru4rec_user_vector_with_biases_and_an_empty_history():
  """GRU4Rec's user vector (the scan's final carry, projected alone) is the full forward's last
  position with non-zero biases too, and zero for a history of padding only."""
  model = MODELS["gru4rec"]()
  params = nn.unbox(model.init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32)))
  leaves, tree = jax.tree.flatten(params)  # random biases too (they start at zero)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, a.shape) for k, a in
                                     zip(keys, leaves)])
  seqs = jnp.array([[0, 0, 0, 5, 7, 9, 11, 13, 2, 4, 6, 8], list(range(20, 32)), [0] * 12])
  want = model.apply(params, seqs)[:, -1]
  got = jax.jit(lambda p, s: model.apply(p, s, method=model.user_vector))(params, seqs)
  assert not np.allclose(want[:2], 0, atol=1e-3)
  np.testing.assert_allclose(got, want, atol=1e-5)
  np.testing.assert_array_equal(got[2], 0)


def test_length_buckets():
  assert length_buckets(200) == (32, 56, 80, 104, 128, 152, 176, 200)
  assert length_buckets(3) == (3,)
  for n in (5, 20, 50, 200):
    b = length_buckets(n)
    assert b[-1] == n and list(b) == sorted(set(b))


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_trimmed_evaluation_gives_the_same_metrics(tiny_config, name):
  config = tiny_config(name)
  config.data.max_len = 50  # synthetic users are shorter: most batches get trimmed
  data = prepare(config.data)
  batches = list(eval_batches(data, "test", 16, trim=True))
  assert len({b["inputs"].shape[1] for b in batches}) > 1  # several widths are used
  assert sorted(np.concatenate([b["targets"] for b in batches])[:data.num_users]) == sorted(
      data.test_targets)
  model = build_backbone(config.model, data.num_items, data.max_len)
  params = nn.unbox(model.init({"params": jax.random.key(0)},
                               jnp.zeros((1, data.max_len), jnp.int32)))["params"]
  mesh = sharding.make_mesh(1, 1, jax.devices()[:1])
  shardings = jax.tree.map(lambda _: sharding.replicated(mesh), params)
  full = lambda p, x: model.apply({"params": p}, x)[:, -1]
  fast = lambda p, x: model.apply({"params": p}, x, method=model.user_vector)
  table = lambda p: model.apply({"params": p}, method=model.item_table)
  ref = Evaluator(make_eval_step(full, table, data.num_items, (10, 20)), mesh, shardings, 16,
                  trim=False)(params, data, "test")
  # Trimmed, and trimmed with the user vectors computed in chunks (6 -> 4 users, a divisor of
  # 16): a chunk that put any row back in the wrong place would score the wrong user.
  for chunk in (0, 6):
    got = Evaluator(make_eval_step(fast, table, data.num_items, (10, 20), chunk), mesh,
                    shardings, 16, trim=True)(params, data, "test")
    assert got["users"] == ref["users"] == data.num_users
    for k in ref:
      np.testing.assert_allclose(got[k], ref[k], atol=1e-6, err_msg=f"{k}, chunk {chunk}")


def test_chunked_keeps_rows_in_place():
  x = jnp.arange(12 * 3, dtype=jnp.float32).reshape(12, 3)
  fn = lambda c: jnp.cumsum(c, axis=1) * jnp.sum(c, axis=1, keepdims=True)  # row-wise
  for chunk in (0, 1, 4, 5, 12, 40):
    np.testing.assert_array_equal(chunked(fn, x, chunk), fn(x), err_msg=str(chunk))


def test_resolve_chunk():
  mesh = sharding.make_mesh(1, 1, jax.devices()[:1])
  cpu = jax.devices()[0].platform == "cpu"
  assert resolve_chunk(-1, "sasrec", mesh) == (16 if cpu else 0)
  assert resolve_chunk(-1, "gru4rec", mesh) == 0
  assert resolve_chunk(0, "sasrec", mesh) == 0 and resolve_chunk(7, "gru4rec", mesh) == 7


@pytest.mark.parametrize("query_blocks", [1, 2, 5])
def test_inference_attention_equals_the_training_softmax(query_blocks):
  """Deterministic calls normalise the attention after the value product and use the fused
  q/k/v product; the training path (separate q, k, v products, the softmax in causal query
  blocks, then dropout) must give the same vectors when dropout is off."""
  model = SASRec(vocab_size=40, max_len=12, embed_dim=16, mlp_dim=32, num_heads=2, dropout=0.0,
                 query_blocks=query_blocks)
  params = nn.unbox(model.init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32)))
  seqs = jnp.array([[0, 0, 0, 5, 7, 9, 11, 13, 2, 4, 6, 8], [0] * 9 + [3, 1, 2],
                    list(range(20, 32))])
  apply = jax.jit(lambda p, det: model.apply(p, seqs, deterministic=det,
                                             rngs={"dropout": jax.random.key(1)}),
                  static_argnums=1)
  np.testing.assert_allclose(apply(params, True), apply(params, False), atol=2e-6)
  # Gradients through the deferred normalisation match too (the peer's check relies on them).
  grad = jax.jit(jax.grad(lambda p, det: jnp.sum(jnp.sin(apply(p, det)))), static_argnums=1)
  g_inf, g_train = grad(params, True), grad(params, False)
  for a, b in zip(jax.tree.leaves(g_inf), jax.tree.leaves(g_train)):
    np.testing.assert_allclose(a, b, atol=2e-5)


@pytest.mark.parametrize("query_blocks", [2, 3])
def test_packed_training_attention_in_query_blocks_equals_the_dense_forward(query_blocks):
  """The training path on packed rows (block-diagonal mask, causal query blocks that cut through
  sequences) gives the dense forward's values at every real position when dropout is off."""
  model = SASRec(vocab_size=40, max_len=12, embed_dim=16, mlp_dim=32, num_heads=2, dropout=0.0,
                 query_blocks=query_blocks)
  params = nn.unbox(model.init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32)))
  seqs = jnp.array([[0, 0, 0, 5, 7, 9, 11, 13, 2, 4, 6, 8], [0] * 9 + [3, 1, 2],
                    list(range(20, 32)), [0] * 10 + [4, 4], [0] * 11 + [9]])
  dense = np.asarray(model.apply(params, seqs)).reshape(-1, 16)
  h, idx = jax.jit(lambda p: model.apply(p, seqs, 36, deterministic=False, method=model.packed,
                                         rngs={"dropout": jax.random.key(1)}))(params)
  h, idx = np.asarray(h), np.asarray(idx)
  filled = idx < seqs.size
  assert filled.sum() == np.count_nonzero(seqs)
  np.testing.assert_allclose(h[filled], dense[idx[filled]], atol=1e-5)


def test_causal_query_blocks_cover_the_queries_in_order():
  from dpr_jax.models.sasrec import causal_query_blocks
  assert causal_query_blocks(200, 2) == [(0, 100), (100, 200)]
  assert causal_query_blocks(10, 3) == [(0, 3), (3, 7), (7, 10)]
  assert causal_query_blocks(3, 8) == [(0, 1), (1, 2), (2, 3)]  # at most one block per query
  assert causal_query_blocks(7, 1) == [(0, 7)]


def _ce_inputs(seed=0):
  rng = np.random.default_rng(seed)
  h = jnp.asarray(rng.standard_normal((3, 10, 8)), jnp.float32)
  table = jnp.asarray(rng.standard_normal((48, 8)), jnp.float32)
  lengths = np.array([10, 4, 0])  # left-padded: 14 supervised positions of 30
  targets = np.zeros((3, 10), np.int32)
  for b, n in enumerate(lengths):
    targets[b, 10 - n:] = rng.integers(1, 38, n)
  return h, table, jnp.asarray(targets)


@pytest.mark.parametrize("capacity", [14, 16, 64])  # exact fit, spare slots, >= N (dense)
@pytest.mark.parametrize("tiled", [False, True])
def test_compact_head_equals_the_dense_loss(capacity, tiled):
  from dpr_jax.train import loss as loss_lib
  h, table, targets = _ce_inputs()

  def grads(fn):
    f = lambda h, t: fn(h, t)[0]
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(h, table)

  want, (dh_want, dt_want) = grads(lambda h, t: loss_lib.full_softmax_ce(h, t, targets, 37))
  got, (dh, dt) = grads(lambda h, t: loss_lib.compact_softmax_ce(
      h, t, targets, 37, capacity, tiled=tiled, tile_size=16))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  np.testing.assert_allclose(dh, dh_want, atol=1e-6)
  np.testing.assert_allclose(dt, dt_want, atol=1e-6)
  assert not np.any(dh[2])  # the all-padding user gets no gradient
  count = loss_lib.compact_softmax_ce(h, table, targets, 37, capacity)[1]
  assert float(count) == 14


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_bf16_compute_keeps_float32_params_and_the_loss(tiny_config, name):
  from dpr_jax.train.loss import softmax_ce
  config = tiny_config(name)
  data = prepare(config.data)
  losses = {}
  for dtype in ("float32", "bfloat16"):
    config.model.compute_dtype = dtype
    model = build_backbone(config.model, data.num_items, data.max_len)
    params = nn.unbox(model.init({"params": jax.random.key(0)},
                                 jnp.zeros((1, data.max_len), jnp.int32)))["params"]
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))

    def loss_fn(params, model=model):
      h = model.apply({"params": params}, jnp.asarray(data.train_inputs[:32]))
      table = model.apply({"params": params}, method=model.item_table)
      return softmax_ce(h, table, jnp.asarray(data.train_targets[:32]), data.num_items)[0], h

    (loss, h), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
    assert h.dtype == jnp.dtype(dtype)
    assert loss.dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
    losses[dtype] = float(loss)
  assert losses["bfloat16"] != losses["float32"]  # the switch does something
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=1e-2)


def test_packed_sasrec_equals_the_dense_forward_at_real_positions():
  """Row packing: sequences of 9, 3, 12, 0, 2 and 1 items in rows of 12 -> first fit, longest
  first: [12], [9, 3], [2, 1] (3 rows); every real position once, in order inside its
  sequence, with the dense forward's value; a fourth row stays empty."""
  from dpr_jax.train.packing import first_fit_rows

  model = MODELS["sasrec"]()
  params = nn.unbox(model.init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32)))
  seqs = jnp.array([[0, 0, 0, 5, 7, 9, 11, 13, 2, 4, 6, 8], [0] * 9 + [3, 1, 2],
                    list(range(20, 32)), [0] * 12, [0] * 10 + [4, 4], [0] * 11 + [9]])
  real = np.flatnonzero(np.asarray(seqs).reshape(-1))  # 27 positions
  assert first_fit_rows(np.sum(np.asarray(seqs) > 0, 1)[None], 12)[0] == 3
  dense = np.asarray(model.apply(params, seqs)).reshape(-1, 16)
  h, idx = model.apply(params, seqs, 48, method=model.packed)
  h, idx = np.asarray(h), np.asarray(idx)
  filled = idx < seqs.size
  assert sorted(idx[filled]) == list(real)  # each real position exactly once
  rows = idx.reshape(4, 12)
  assert list(rows[0]) == list(range(24, 36))  # the 12-item sequence fills row 0
  assert list(rows[1]) == list(range(3, 12)) + list(range(21, 24))  # 9 then 3
  assert list(rows[2, :3]) == [58, 59, 71] and not filled.reshape(4, 12)[3].any()
  assert not np.any(h[~filled])  # empty slots are zero
  np.testing.assert_allclose(h[filled], dense[idx[filled]], atol=1e-5)
  with pytest.raises(ValueError, match=r"multiple of groups \* length = 1 \* 12"):
    model.apply(params, seqs, 30, method=model.packed)  # not whole rows


def test_packed_in_groups_is_the_same_function_per_shard():
  """groups = 2: each half of the batch is packed into its own half of the slots (rows never mix
  the halves), every real position once, with the dense forward's value; the targets gathered
  group by group are the dense targets at those positions."""
  from dpr_jax.models.sasrec import gather_packed
  from dpr_jax.train.packing import group_rows

  model = MODELS["sasrec"]()
  params = nn.unbox(model.init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32)))
  rng = np.random.default_rng(1)
  n = np.array([12, 3, 9, 0, 5, 7, 2, 11])
  seqs = np.where(np.arange(12)[None] >= 12 - n[:, None], rng.integers(1, 40, (8, 12)), 0)
  capacity = 12 * int(group_rows(n[None], 12, groups=2)[0])
  dense = np.asarray(model.apply(params, jnp.asarray(seqs))).reshape(-1, 16)
  h, idx = model.apply(params, jnp.asarray(seqs), capacity, groups=2, method=model.packed)
  h, idx = np.asarray(h), np.asarray(idx)
  filled = idx < seqs.size
  assert sorted(idx[filled]) == list(np.flatnonzero(seqs))
  half = capacity // 2  # slots of group 0 read rows 0-3 only, group 1 rows 4-7
  assert np.all(idx[:half][filled[:half]] < 4 * 12) and np.all(idx[half:][filled[half:]] >= 48)
  np.testing.assert_allclose(h[filled], dense[idx[filled]], atol=1e-5)
  assert not np.any(h[~filled])
  targets = rng.integers(1, 50, seqs.shape) * (seqs > 0)
  got = np.asarray(gather_packed(jnp.asarray(targets), jnp.asarray(idx), groups=2))
  np.testing.assert_array_equal(got[filled], targets.reshape(-1)[idx[filled]])
  assert not got[~filled].any()
  with pytest.raises(ValueError, match="multiple of groups"):
    model.apply(params, jnp.asarray(seqs), 12 * 5, groups=2, method=model.packed)


def test_row_packing_in_graph_needs_exactly_the_host_rows():
  """The model's in-graph first fit and the host's count agree: with C = L * first_fit_rows
  every real position of random batches finds a slot."""
  from dpr_jax.train.packing import first_fit_rows

  model = MODELS["sasrec"]()
  params = nn.unbox(model.init({"params": jax.random.key(0)}, jnp.zeros((1, 12), jnp.int32)))
  rng = np.random.default_rng(0)
  for _ in range(5):
    n = np.minimum(rng.geometric(0.15, 24), 12) * (rng.random(24) > 0.1)  # some empty
    seqs = np.where(np.arange(12)[None] >= 12 - n[:, None], rng.integers(1, 50, (24, 12)), 0)
    rows = int(first_fit_rows(n[None], 12)[0])
    _, idx = model.apply(params, jnp.asarray(seqs), rows * 12, method=model.packed)
    assert sorted(np.asarray(idx)[np.asarray(idx) < seqs.size]) == list(np.flatnonzero(seqs))


# No levels: dense; a level that holds the batch: packed; only a level too small: dense.
# Levels in units of the buffer: positions (GRU4Rec's head), or rows of L (SASRec).
@pytest.mark.parametrize("level,packed", [(None, False), (16, True), (1, False)])
@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_train_step_loss_with_packing(tiny_config, name, level, packed):
  from dpr_jax.train.packing import TrainSteps, host_positions, row_length_of
  from dpr_jax.train.step import (
    create_state,
    jit_train_step,
    make_optimizer,
    make_train_step,
  )
  config = tiny_config(name)
  config.model.dropout = 0.0  # the packed path draws other dropout masks; without, same loss
  data = prepare(config.data)
  model = build_backbone(config.model, data.num_items, data.max_len)
  tx = make_optimizer(config.train)
  mesh = sharding.make_mesh(1, 1, jax.devices()[:1])
  state, shardings = create_state(model, tx, mesh, 0, data.max_len)
  batch = {"inputs": jnp.asarray(data.train_inputs[None, :16]),
           "targets": jnp.asarray(data.train_targets[None, :16])}
  rows = row_length_of(model, data.max_len)
  unit = rows or 16  # 16 x 16 positions, or 16 rows of L, hold any 16 sequences
  levels = () if level is None else (level * unit,)
  compiled = levels[0] if packed else None
  assert unit < host_positions(batch, rows) <= 16 * unit
  from dpr_jax.train.loss import full_softmax_ce
  h = model.apply({"params": state.params}, batch["inputs"][0])
  want = float(full_softmax_ce(h, model.apply({"params": state.params}, method=model.item_table),
                               batch["targets"][0], data.num_items)[0])
  steps = TrainSteps(lambda c: jit_train_step(
      make_train_step(model, tx, data.num_items, 0, head_capacity=c), mesh, shardings), levels)
  _, metrics = steps(state, batch, host_positions(batch, rows))  # donates state
  assert steps.compiled == (compiled,)
  np.testing.assert_allclose(metrics["loss"][0], want, rtol=1e-5)
