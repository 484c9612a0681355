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

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class PromptChoice:
  """Per-step choice of each example's prompt among its candidates, and its embedding.

  Example ``i`` at step ``s`` carries ``table[rows[start[i] + hash(i, s) % count[i]]]`` (zeros
  when ``count[i] == 0``, i.e. no prompt), where ``start``/``count`` are the per-example arrays
  ``prompt_start``/``prompt_count``. The hash is plain integer arithmetic, identical in tf.data
  and numpy, so the choice is a function of (seed, step, example) and resumes exactly.

  Grouped examples: when ``prompt_start``/``prompt_count`` are ``[N, K]`` (K examples per row,
  e.g. per user), example ``(n, k)`` is numbered ``n * K + k`` and ``prompt`` is ``[B, K, D_t]``.
  """

  rows: np.ndarray  # int32[R] candidate prompt rows, grouped per (family, tag)
  table: np.ndarray  # float32[P, D_t] prompt embeddings
  seed: int = 0


def _example_ids(idx, count, range_fn):
  """Numbers of the batch's examples: ``idx`` [B], or ``idx * K + k`` [B, K] for grouped rows."""
  if len(count.shape) == 1:
    return idx
  k = count.shape[1]
  return idx[:, None] * k + range_fn(k)[None, :]


def _prompt_hash(example, step, seed):
  """Non-negative int64 mixing of (example, step, seed); the same for numpy and tf tensors."""
  return (example * 2654435761 + (step * 40503 + seed * 7919) % 1000003 * 97) % 2147483647


class _NumpyDataset:
  """The tf.data graph below in plain numpy, prefetched by a thread (fallback without TF)."""

  def __init__(self, arrays: Mapping[str, np.ndarray], index: np.ndarray, steps: np.ndarray,
               steps_per_call: int, prompts: PromptChoice | None):
    self.arrays, self.index, self.steps = arrays, index, steps
    self.steps_per_call, self.prompts = steps_per_call, prompts

  def _element(self, step: int, idx: np.ndarray) -> dict:
    out = {k: v[idx] for k, v in self.arrays.items()}
    if self.prompts is not None:
      out["prompt"] = _choose_prompts_np(self.prompts, out, idx, step)
    return out

  def as_numpy_iterator(self):
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=2)

    def produce():
      for start in range(0, len(self.index), self.steps_per_call):
        elements = [self._element(int(s), i) for s, i in
                    zip(self.steps[start:start + self.steps_per_call],
                        self.index[start:start + self.steps_per_call])]
        q.put({k: np.stack([e[k] for e in elements]) for k in elements[0]})
      q.put(None)

    threading.Thread(target=produce, daemon=True).start()
    while (item := q.get()) is not None:
      yield item


def balance_groups(index: np.ndarray, lengths: np.ndarray, groups: int) -> np.ndarray:
  """int64[n, B]: each global batch's examples reordered so that its ``groups`` blocks of B / G
  consecutive columns (the ``data`` shards) hold alike mixes of lengths.

  Longest first, the examples are dealt to the groups in snake order (0, 1, .., G-1, G-1, .., 0,
  ..), so every shard gets one of each G-tuple of similar lengths and packs into about the same
  number of rows. The batch keeps its examples (the loss is a mean over all of them); only their
  columns move. ``groups`` = 1 returns ``index`` unchanged.

  Args:
    index: int[n, B] example indices per step; lengths: int[U] real positions per example.
  """
  index = np.asarray(index, np.int64)
  n, b = index.shape
  if groups == 1:
    return index
  ranked = np.take_along_axis(index, np.argsort(-lengths[index], axis=1, kind="stable"), axis=1)
  k = np.arange(b)
  lap, pos = divmod(k, groups)
  group = np.where(lap % 2 == 0, pos, groups - 1 - pos)
  column = group * (b // groups) + lap  # the k-th longest goes to this column
  out = np.empty_like(index)
  out[:, column] = ranked
  return out


class BatchOrder:
  """Which examples form the global batch of each step (see the module docstring).

  With ``lengths`` and ``groups`` > 1 each batch's columns are arranged by
  :func:`balance_groups` (packed training on a mesh whose ``data`` axis has ``groups`` shards).
  """

  def __init__(self, num_examples: int, batch_size: int, seed: int,
               lengths: np.ndarray | None = None, groups: int = 1):
    if batch_size > num_examples:
      raise ConfigError(
          f"config.train.batch_size={batch_size} exceeds the {num_examples} training users")
    self.num_examples = num_examples
    self.batch_size = batch_size
    self.seed = seed
    self.steps_per_epoch = num_examples // batch_size
    self._lengths = None if lengths is None or groups == 1 else np.asarray(lengths)
    self._groups = groups

  @functools.lru_cache(maxsize=4)
  def _permutation(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

  def indices(self, start_step: int, num_steps: int) -> np.ndarray:
    """int64[num_steps, B]: example indices of the global batches of steps start..start+n."""
    out = np.empty((num_steps, self.batch_size), np.int64)
    for i, step in enumerate(range(start_step, start_step + num_steps)):
      epoch, k = divmod(step, self.steps_per_epoch)
      out[i] = self._permutation(epoch)[k * self.batch_size:(k + 1) * self.batch_size]
    if self._lengths is not None:
      out = balance_groups(out, self._lengths, self._groups)
    return out


def _choose_prompts_np(prompts: PromptChoice, element: dict, idx: np.ndarray, step: int):
  count = element["prompt_count"].astype(np.int64)
  ids = _example_ids(idx.astype(np.int64), count, lambda k: np.arange(k, dtype=np.int64))
  pick = _prompt_hash(ids, step, prompts.seed) % np.maximum(count, 1)
  rows = prompts.rows[element["prompt_start"] + pick]
  return np.where((count > 0)[..., None], prompts.table[rows], 0.0).astype(np.float32)


def host_slice(batch_size: int, process_index: int, process_count: int) -> slice:
  """Columns of a global batch that process ``process_index`` reads."""
  if batch_size % process_count:
    raise ConfigError(
        f"config.train.batch_size={batch_size} is not divisible by the {process_count} processes")
  per_host = batch_size // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


def train_dataset(arrays: Mapping[str, np.ndarray], order: BatchOrder, start_step: int,
                  num_steps: int, steps_per_call: int, process_index: int | None = None,
                  process_count: int | None = None, prompts: PromptChoice | None = None):
  """tf.data.Dataset of stacked host batches ``{name: [S, B/P, ...]}`` for steps start..+n.

  Args:
    arrays: per-example arrays with a leading example axis (e.g. train inputs/targets [U, L]).
    num_steps: a multiple of ``steps_per_call``.
    prompts: when given, each element also carries ``prompt`` float32[S, B/P, D_t], chosen per
      step as :class:`PromptChoice` says (``arrays`` must hold prompt_start / prompt_count).
  """
  if num_steps % steps_per_call:
    raise ValueError(f"num_steps={num_steps} is not a multiple of steps_per_call={steps_per_call}")
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  cols = host_slice(order.batch_size, process_index, process_count)
  index = order.indices(start_step, num_steps)[:, cols]  # [num_steps, B/P]
  steps = np.arange(start_step, start_step + num_steps, dtype=np.int64)
  tf = _tf()
  if tf is None:
    return _NumpyDataset(arrays, index, steps, steps_per_call, prompts)
  tables = {k: tf.constant(v) for k, v in arrays.items()}
  if prompts is not None:
    rows, table = tf.constant(prompts.rows), tf.constant(prompts.table)

  def element(step, idx):
    out = {k: tf.gather(t, idx) for k, t in tables.items()}
    if prompts is not None:
      count = tf.cast(out["prompt_count"], tf.int64)
      ids = _example_ids(idx, count, lambda k: tf.range(k, dtype=tf.int64))
      pick = _prompt_hash(ids, step, prompts.seed) % tf.maximum(count, 1)
      chosen = tf.gather(table, tf.gather(rows, tf.cast(out["prompt_start"], tf.int64) + pick))
      out["prompt"] = tf.where((count > 0)[..., None], chosen, tf.zeros_like(chosen))
    return out

  ds = tf.data.Dataset.from_tensor_slices((steps, index))
  ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
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
