"""The tiled full-catalogue cross-entropy against the dense reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax.train import loss as loss_lib


def _inputs(b: int, l: int, d: int, v: int, num_items: int, seed: int = 0):
  """h float32[B, L, d], table float32[V, d], targets int32[B, L] with ~25% zeros."""
  rng = np.random.default_rng(seed)  # numpy: compiling jax.random's kernels costs seconds on CPU
  h = jnp.asarray(rng.standard_normal((b, l, d)), jnp.float32)
  table = jnp.asarray(rng.standard_normal((v, d)), jnp.float32)
  targets = rng.integers(1, num_items + 1, (b, l))
  targets = jnp.asarray(np.where(rng.random((b, l)) < 0.25, 0, targets), jnp.int32)
  return h, table, targets


# V = 48 rows: row 0 and rows past num_items are padding. The softmax runs over the items
# only: 37 items in tiles of 7 or 16 pad the last tile (masked), 36 items in tiles of 12 need no
# mask, and tiles >= num_items are one tile (the fused one-tile VJP), whose forward rule runs
# over row chunks on CPU: 15 positions in chunks of 4 or 6 (the last one padded), or whole.
@pytest.mark.parametrize("tile_size,num_items,row_chunk", [
    (7, 37, 512), (16, 37, 512), (12, 36, 512), (37, 37, 512), (1000, 37, 512), (37, 37, 4),
    (1000, 37, 6)])
def test_tiled_matches_dense(monkeypatch, tile_size, num_items, row_chunk):
  monkeypatch.setattr(loss_lib, "CPU_ROW_CHUNK", row_chunk)
  v = 48
  h, table, targets = _inputs(3, 5, 8, v, num_items)

  def loss_and_grads(fn):
    f = lambda h, t: fn(h, t, targets, num_items)
    (loss, count), grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(h, table)
    return loss, count, grads

  dense_loss, dense_count, (dense_dh, dense_dt) = loss_and_grads(loss_lib.full_softmax_ce)
  tiled_loss, tiled_count, (tiled_dh, tiled_dt) = loss_and_grads(
      lambda *a: loss_lib.tiled_softmax_ce(*a, tile_size=tile_size))

  assert float(tiled_count) == float(dense_count) == float(jnp.sum(targets > 0))
  np.testing.assert_allclose(tiled_loss, dense_loss, rtol=1e-5)
  np.testing.assert_allclose(tiled_dh, dense_dh, atol=1e-5)
  np.testing.assert_allclose(tiled_dt, dense_dt, atol=1e-5)
  # Padding rows never enter the softmax, so only real targets could move them: no gradient.
  assert not np.any(tiled_dt[0]) and not np.any(tiled_dt[num_items + 1:])


def test_tiled_all_targets_zero():
  h, table, _ = _inputs(2, 3, 4, 16, 10)
  targets = jnp.zeros((2, 3), jnp.int32)
  (loss, count), dh = jax.jit(jax.value_and_grad(
      lambda h: loss_lib.tiled_softmax_ce(h, table, targets, 10, tile_size=5), has_aux=True))(h)
  assert float(loss) == 0.0 and float(count) == 0.0 and not np.any(dh)


def test_tiled_bf16_inputs():
  num_items, v = 60, 64
  h, table, targets = _inputs(2, 4, 16, v, num_items, seed=1)
  dense, _ = jax.jit(loss_lib.full_softmax_ce, static_argnums=3)(h, table, targets, num_items)
  f = lambda h, t: loss_lib.tiled_softmax_ce(h, t, targets, num_items, tile_size=24)[0]
  loss, (dh, dt) = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(
      h.astype(jnp.bfloat16), table.astype(jnp.bfloat16))
  assert loss.dtype == jnp.float32 and dh.dtype == dt.dtype == jnp.bfloat16
  np.testing.assert_allclose(loss, dense, rtol=2e-2)


def test_auto_switch(monkeypatch):
  calls = []
  real_tiled = loss_lib.tiled_softmax_ce
  monkeypatch.setattr(loss_lib, "tiled_softmax_ce",
                      lambda *a, **k: calls.append("tiled") or real_tiled(*a, **k))
  h, table, targets = _inputs(2, 3, 4, 16, 12)  # 6 positions x 16 rows = 96 logits
  # Traced under jit: the choice is made from static shapes at trace time.
  run = lambda **k: jax.jit(lambda *a: loss_lib.softmax_ce(*a, 12, **k)[0])(h, table, targets)
  dense = run()
  assert calls == []
  monkeypatch.setattr(loss_lib, "TILED_CE_THRESHOLD", 95)
  auto = run(tile_size=5)
  assert calls == ["tiled"]
  np.testing.assert_allclose(auto, dense, rtol=1e-5)
  run(tiled=False)
  assert calls == ["tiled"]


def test_tiled_grad_memory():
  # N = 1024 positions x V = 8192 items: the logits alone are 32 MiB in float32.
  b, l, d, v, num_items = 8, 128, 16, 8192, 8000
  logits_bytes = b * l * v * 4
  h = jax.ShapeDtypeStruct((b, l, d), jnp.float32)
  table = jax.ShapeDtypeStruct((v, d), jnp.float32)
  targets = jax.ShapeDtypeStruct((b, l), jnp.int32)

  def temp_bytes(fn):
    grad = jax.jit(jax.grad(lambda h, t, y: fn(h, t, y, num_items)[0], argnums=(0, 1)))
    stats = grad.lower(h, table, targets).compile().memory_analysis()
    if stats is None or not hasattr(stats, "temp_size_in_bytes"):
      pytest.skip("memory_analysis() is not available on this backend")
    return stats.temp_size_in_bytes

  tiled = temp_bytes(lambda *a: loss_lib.tiled_softmax_ce(*a, tile_size=512))
  dense = temp_bytes(loss_lib.full_softmax_ce)
  assert dense > logits_bytes
  assert tiled < logits_bytes / 4
