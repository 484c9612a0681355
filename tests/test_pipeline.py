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
