"""The training input pipeline: a deterministic stream of global batches through tf.data.

Order. Epoch ``e`` visits the examples in the permutation drawn from ``(seed, e)``; the global
batch of step ``s`` is rows ``[(s % spe) * B, (s % spe + 1) * B)`` of epoch ``s // spe`` (spe =
steps per epoch; the remainder of each epoch is dropped, i.e. drop_remainder). The batch of a
step therefore depends only on ``(seed, step)``: a resumed run sees exactly the batches an
uninterrupted one would, and any number of hosts sees the same global batches.

Sharding. Process ``p`` of ``P`` reads columns ``[p * B/P, (p + 1) * B/P)`` of each global batch
(its per-host shard); :func:`to_global` assembles the host pieces into one global ``jax.Array``
sharded over the ``data`` mesh axis.

Stacking. ``steps_per_call`` consecutive batches are stacked into one element ``[S, B/P, ...]`` so
one jit call runs S steps in a ``lax.scan``; tf.data prefetches the next elements while the device
works, so neither side waits for the other.
"""

from __future__ import annotations

import functools
from typing import Iterator, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dpr_jax.errors import ConfigError


def _tf():
  """tensorflow, or None where it is not installed (e.g. a bare accelerator image).

  Without TF the same batches come from :class:`_NumpyDataset`, a background-thread prefetcher.
  """
  try:
    import tensorflow as tf  # Lazily: TF is slow to import and only the pipeline needs it.
  except ImportError:
    return None
  tf.config.set_visible_devices([], "GPU")  # Keep TF off accelerators; JAX owns them.
  return tf


class _NumpyDataset:
  """The tf.data graph below in plain numpy, prefetched by a thread (fallback without TF)."""

  def __init__(self, arrays: Mapping[str, np.ndarray], index: np.ndarray, steps_per_call: int):
    self.arrays, self.index, self.steps_per_call = arrays, index, steps_per_call

  def as_numpy_iterator(self):
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=2)

    def produce():
      for start in range(0, len(self.index), self.steps_per_call):
        idx = self.index[start:start + self.steps_per_call]
        q.put({k: v[idx] for k, v in self.arrays.items()})
      q.put(None)

    threading.Thread(target=produce, daemon=True).start()
    while (item := q.get()) is not None:
      yield item


class BatchOrder:
  """Which examples form the global batch of each step (see the module docstring)."""

  def __init__(self, num_examples: int, batch_size: int, seed: int):
    if batch_size > num_examples:
      raise ConfigError(
          f"config.train.batch_size={batch_size} exceeds the {num_examples} training users")
    self.num_examples = num_examples
    self.batch_size = batch_size
    self.seed = seed
    self.steps_per_epoch = num_examples // batch_size

  @functools.lru_cache(maxsize=4)
  def _permutation(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

  def indices(self, start_step: int, num_steps: int) -> np.ndarray:
    """int64[num_steps, B]: example indices of the global batches of steps start..start+n."""
    out = np.empty((num_steps, self.batch_size), np.int64)
    for i, step in enumerate(range(start_step, start_step + num_steps)):
      epoch, k = divmod(step, self.steps_per_epoch)
      out[i] = self._permutation(epoch)[k * self.batch_size:(k + 1) * self.batch_size]
    return out


def host_slice(batch_size: int, process_index: int, process_count: int) -> slice:
  """Columns of a global batch that process ``process_index`` reads."""
  if batch_size % process_count:
    raise ConfigError(
        f"config.train.batch_size={batch_size} is not divisible by the {process_count} processes")
  per_host = batch_size // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


def train_dataset(arrays: Mapping[str, np.ndarray], order: BatchOrder, start_step: int,
                  num_steps: int, steps_per_call: int, process_index: int | None = None,
                  process_count: int | None = None):
  """tf.data.Dataset of stacked host batches ``{name: [S, B/P, ...]}`` for steps start..+n.

  Args:
    arrays: per-example arrays with a leading example axis (e.g. train inputs/targets [U, L]).
    num_steps: a multiple of ``steps_per_call``.
  """
  if num_steps % steps_per_call:
    raise ValueError(f"num_steps={num_steps} is not a multiple of steps_per_call={steps_per_call}")
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  cols = host_slice(order.batch_size, process_index, process_count)
  index = order.indices(start_step, num_steps)[:, cols]  # [num_steps, B/P]
  tf = _tf()
  if tf is None:
    return _NumpyDataset(arrays, index, steps_per_call)
  tables = {k: tf.constant(v) for k, v in arrays.items()}
  ds = tf.data.Dataset.from_tensor_slices(index)
  ds = ds.map(lambda i: {k: tf.gather(t, i) for k, t in tables.items()},
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(steps_per_call, drop_remainder=True)
  return ds.prefetch(2)


def to_global(host_batch: Mapping[str, np.ndarray], mesh: Mesh, batch_axis: int = 1) -> dict:
  """Host batches -> global jax.Arrays sharded over ``data`` along ``batch_axis``."""
  out = {}
  for k, v in host_batch.items():
    v = np.asarray(v)
    spec = [None] * v.ndim
    spec[batch_axis] = "data"
    out[k] = jax.make_array_from_process_local_data(NamedSharding(mesh, P(*spec)), v)
  return out


def iterate(dataset) -> Iterator[dict]:
  """Numpy view of a tf.data dataset."""
  for element in dataset.as_numpy_iterator():
    yield element
