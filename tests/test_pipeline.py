"""The training stream: deterministic order, exact resume, host shards, tf.data == numpy path."""

import numpy as np
import pytest

from dpr_jax.data import pipeline
from dpr_jax.errors import ConfigError


def test_each_epoch_is_a_permutation_and_order_depends_on_seed_only():
  order = pipeline.BatchOrder(num_examples=50, batch_size=8, seed=3)
  assert order.steps_per_epoch == 6
  idx = order.indices(0, 12)
  for epoch in (idx[:6], idx[6:]):
    assert len(np.unique(epoch)) == 48  # 2 dropped per epoch (drop_remainder)
  assert not np.array_equal(idx[:6], idx[6:])  # reshuffled each epoch
  np.testing.assert_array_equal(idx, pipeline.BatchOrder(50, 8, 3).indices(0, 12))
  assert not np.array_equal(idx, pipeline.BatchOrder(50, 8, 4).indices(0, 12))
  # Resuming at step 7 sees exactly the batches of an uninterrupted run.
  np.testing.assert_array_equal(order.indices(7, 5), idx[7:12])


def test_host_shards_partition_the_global_batch():
  cols = [pipeline.host_slice(8, p, 4) for p in range(4)]
  assert [c.start for c in cols] == [0, 2, 4, 6] and cols[-1].stop == 8
  with pytest.raises(ConfigError, match="not divisible"):
    pipeline.host_slice(10, 0, 4)


def test_tf_data_and_numpy_fallback_yield_the_same_batches(monkeypatch):
  arrays = {"inputs": np.arange(40 * 3).reshape(40, 3), "targets": np.arange(40)}
  order = pipeline.BatchOrder(40, 4, seed=0)
  kw = dict(start_step=2, num_steps=6, steps_per_call=3, process_index=1, process_count=2)
  tf_batches = list(pipeline.iterate(pipeline.train_dataset(arrays, order, **kw)))
  monkeypatch.setattr(pipeline, "_tf", lambda: None)
  np_batches = list(pipeline.iterate(pipeline.train_dataset(arrays, order, **kw)))
  assert len(tf_batches) == len(np_batches) == 2
  for a, b in zip(tf_batches, np_batches):
    assert a["inputs"].shape == (3, 2, 3)
    for k in arrays:
      np.testing.assert_array_equal(a[k], b[k])
  want = order.indices(2, 3)[:, 2:4]
  np.testing.assert_array_equal(tf_batches[0]["targets"], want)


def test_prompt_choice_is_identical_in_tf_data_and_numpy(monkeypatch):
  rng = np.random.default_rng(0)
  table = rng.normal(size=(7, 5)).astype(np.float32)
  prompts = pipeline.PromptChoice(rows=np.array([4, 5, 6, 0, 1], np.int32), table=table, seed=3)
  arrays = {"target": np.arange(30, dtype=np.int32),
            "prompt_start": np.where(np.arange(30) % 2, 0, 3).astype(np.int32),
            "prompt_count": np.where(np.arange(30) % 5 == 0, 0, np.where(np.arange(30) % 2, 3, 2)
                                     ).astype(np.int32)}
  order = pipeline.BatchOrder(30, 6, seed=1)
  kw = dict(start_step=0, num_steps=8, steps_per_call=2, process_index=0, process_count=1,
            prompts=prompts)
  tf_batches = list(pipeline.iterate(pipeline.train_dataset(arrays, order, **kw)))
  monkeypatch.setattr(pipeline, "_tf", lambda: None)
  np_batches = list(pipeline.iterate(pipeline.train_dataset(arrays, order, **kw)))
  chosen = set()
  for a, b in zip(tf_batches, np_batches):
    np.testing.assert_allclose(a["prompt"], b["prompt"])
    for t, p in zip(a["target"].ravel(), a["prompt"].reshape(-1, 5)):
      if t % 5 == 0:
        assert not p.any()  # no prompt
      else:
        candidates = [4, 5, 6] if t % 2 else [0, 1]
        row = next(r for r in candidates if np.allclose(table[r], p))
        chosen.add(row)
  assert len(chosen) == 5  # every candidate gets picked at some step


def test_grouped_prompt_choice_numbers_examples_row_major(monkeypatch):
  """[N, K] prompt_start / prompt_count (examples grouped per user): example (n, k) gets the
  prompt the flat example n * K + k would get, in tf.data and numpy alike."""
  rng = np.random.default_rng(1)
  table = rng.normal(size=(9, 4)).astype(np.float32)
  prompts = pipeline.PromptChoice(rows=np.arange(9, dtype=np.int32), table=table, seed=5)
  n, k = 12, 3
  start = rng.integers(0, 5, (n, k)).astype(np.int32)
  count = rng.integers(0, 5, (n, k)).astype(np.int32)
  grouped = {"row": np.arange(n, dtype=np.int32), "prompt_start": start, "prompt_count": count}
  flat = {"row": np.arange(n * k, dtype=np.int32), "prompt_start": start.ravel(),
          "prompt_count": count.ravel()}
  kw = dict(start_step=0, num_steps=4, steps_per_call=2, process_index=0, process_count=1,
            prompts=prompts)
  tf_grouped = list(pipeline.iterate(pipeline.train_dataset(
      grouped, pipeline.BatchOrder(n, 4, seed=0), **kw)))
  monkeypatch.setattr(pipeline, "_tf", lambda: None)
  np_grouped = list(pipeline.iterate(pipeline.train_dataset(
      grouped, pipeline.BatchOrder(n, 4, seed=0), **kw)))
  for step in range(4):
    a = tf_grouped[step // 2]["prompt"][step % 2]  # [B, K, D]
    np.testing.assert_allclose(a, np_grouped[step // 2]["prompt"][step % 2])
    assert a.shape == (4, k, 4)
    for b, row in enumerate(tf_grouped[step // 2]["row"][step % 2]):
      ids = row * k + np.arange(k)
      element = {kk: v[ids] for kk, v in flat.items()}
      want = pipeline._choose_prompts_np(prompts, element, ids, step)
      np.testing.assert_allclose(a[b], want)
  assert (count == 0).any() and (count > 1).any()
