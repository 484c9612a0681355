"""Packed training steps: a static buffer per call, chosen on the host.

Left-padded batches are mostly padding (ML-1M at L = 200: ~46% of the positions), so the
training step computes the real positions only, packed into a static float[C, d] buffer
(``SASRec.packed``: whole sequences in rows of L, C = R * L; GRU4Rec packs its output head).
C must hold every step of a jit call. A run-wide C (a high quantile of the batch sizes) costs
a lot: on ML-1M it was ~34% larger than the average batch, and with an in-graph overflow test
(``lax.cond`` to a dense step) the step also paid for zero-filling the dense branch's
residuals.

Here the decision is made on the host, before the call, from data every process holds (the
per-example lengths and the batch order): all processes of a multi-host run pick the same
program, and no check runs on device.

* :func:`call_positions` counts, for every jit call of the run, the buffer rows its fullest
  step (of the global batch) needs: its real positions, or for a model that packs whole
  sequences into rows of L (``row_length``, SASRec: ``SASRec.packed``) L times the rows that
  first-fit decreasing needs (:func:`first_fit_rows`, the same rule the model runs in-graph).
* :func:`capacity_levels` quantises those counts into a few static sizes chosen to pad the
  run's own calls the least (the largest being their maximum), so a run compiles at most
  ``num_levels`` programs and never overflows.
* :class:`TrainSteps` compiles one step per level on first use and gives each call the
  smallest level that holds it; a call above every level (another run's plan) or data where a
  target sits at a padded input takes the dense step, which computes the same loss.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from dpr_jax.data.pipeline import BatchOrder

# Step ranges are counted this many steps at a time (order.indices materialises [n, B]).
_CHUNK = 4096


def real_lengths(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
  """int64[U]: the real (non-padded) input positions of each example, or None when packing
  cannot apply because some target sits at a padded input (never for next-item data).

  Args:
    inputs, targets: int[U, L] training inputs and targets (0 = padding / no target).
  """
  inputs, targets = np.asarray(inputs), np.asarray(targets)
  if np.any((targets > 0) & (inputs == 0)):
    return None
  return np.sum(inputs > 0, axis=1, dtype=np.int64)


def first_fit_rows(lengths: np.ndarray, row_length: int) -> np.ndarray:
  """int64[S]: rows of ``row_length`` that first-fit decreasing fills with each step's sequences.

  Longest first (ties in batch order), each sequence goes to the first row with room for it,
  whole; a new row opens when none has. ``SASRec.packed`` places the sequences by the same rule
  in-graph, so this count is exactly the rows it needs. Vectorised over the steps: B rounds of
  [S, B] array operations.

  Args:
    lengths: int[S, B] real positions of each sequence of each step, each <= row_length.
  """
  lengths = np.asarray(lengths, np.int64)
  s, b = lengths.shape
  ordered = -np.sort(-lengths, axis=1, kind="stable")  # [S, B] longest first
  fill = np.zeros((s, b + 1), np.int64)  # at most B rows; column B never used
  steps = np.arange(s)
  for k in range(b):
    need = ordered[:, k]
    row = np.argmax(fill + need[:, None] <= row_length, axis=1)  # first row with room
    fill[steps, row] += need
  return np.sum(fill > 0, axis=1)


def group_rows(lengths: np.ndarray, row_length: int, groups: int = 1) -> np.ndarray:
  """int64[S]: buffer rows of each step when its B sequences are packed as ``groups`` groups of
  B / groups consecutive sequences, each into the same number of rows (``SASRec.packed``):
  groups x the rows of the fullest group.

  Args:
    lengths: int[S, B] real positions of each sequence of each step.
  """
  lengths = np.asarray(lengths, np.int64)
  s, b = lengths.shape
  per_group = first_fit_rows(lengths.reshape(s * groups, b // groups), row_length)
  return groups * per_group.reshape(s, groups).max(axis=1)


def call_positions(lengths: np.ndarray, order: BatchOrder, start_step: int, num_steps: int,
                   steps_per_call: int, row_length: int | None = None,
                   groups: int = 1) -> np.ndarray:
  """int64[num_steps / steps_per_call]: buffer rows the fullest global batch of each call needs.

  Args:
    lengths: int[U] real positions per example (:func:`real_lengths`).
    order: the run's batch order; steps start_step .. start_step + num_steps, whole calls.
    row_length: None: count real positions; L: count ``L * first_fit_rows`` (a model that packs
      whole sequences into rows of L).
    groups: the batch is packed in this many groups of consecutive sequences, each into its
      own equal share of the buffer: G times the fullest group's positions (or rows,
      :func:`group_rows`).
  """
  if num_steps % steps_per_call:
    raise ValueError(f"num_steps={num_steps} is not a multiple of steps_per_call={steps_per_call}")
  per_step = np.empty((num_steps,), np.int64)
  for lo in range(0, num_steps, _CHUNK):
    n = min(_CHUNK, num_steps - lo)
    batch_lengths = lengths[order.indices(start_step + lo, n)]  # [n, B]
    per_step[lo:lo + n] = (
        groups * batch_lengths.reshape(n, groups, -1).sum(axis=2).max(axis=1)
        if row_length is None else row_length * group_rows(batch_lengths, row_length, groups))
  return per_step.reshape(-1, steps_per_call).max(axis=1)


def capacity_levels(per_call: np.ndarray, num_levels: int, multiple: int, limit: int
                    ) -> tuple[int, ...]:
  """At most ``num_levels`` increasing buffer sizes covering every call, with the fewest padded
  rows over the run.

  Each call's count is rounded up to ``multiple`` (capped at ``limit`` = B * L, where packing
  saves nothing); the levels are the subset of those values, the largest included, that
  minimises the sum over calls of (smallest level >= the call's count): a small dynamic
  programme over the distinct rounded values (O(num_levels * n^2), n of them). The rare
  fullest calls get a level of their own instead of setting the size for everyone.
  """
  if num_levels < 1:
    raise ValueError(f"num_levels must be >= 1, got {num_levels}")
  per_call = np.asarray(per_call, np.int64)
  if per_call.size == 0:
    return ()
  rounded = np.minimum(limit, np.maximum(multiple, -(-per_call // multiple) * multiple))
  values, counts = np.unique(rounded, return_counts=True)  # sorted
  n, k = len(values), min(num_levels, len(values))
  covered = np.concatenate([[0], np.cumsum(counts)])  # covered[j]: calls with value < values[j]
  # best[j]: least total level size over the calls with values[:j + 1], the top level values[j].
  best = values * covered[1:]  # one level
  back = []
  for _ in range(1, k):
    new, arg = best.copy(), np.zeros(n, np.int64)
    for j in range(1, n):
      # Previous top level at i < j; the calls with values (i, j] get level values[j].
      cost = best[:j] + values[j] * (covered[j + 1] - covered[1:j + 1])
      arg[j] = int(np.argmin(cost))
      new[j] = cost[arg[j]]
    back.append(arg)
    best = new
  levels, j = [int(values[-1])], n - 1
  for arg in reversed(back):
    if j == 0:
      break
    j = int(arg[j])
    levels.append(int(values[j]))
  return tuple(sorted(set(levels)))


class TrainSteps:
  """The compiled training step for each capacity level, picked per call on the host.

  Args:
    compile_step: ``capacity (int, or None for dense) -> jitted (state, batch) -> (state,
      metrics)``, e.g. ``jit_train_step(make_train_step(..., head_capacity=c), ...)``.
    levels: static capacities (:func:`capacity_levels`); empty = always dense.
  """

  def __init__(self, compile_step: Callable[[int | None], Callable], levels: tuple[int, ...]):
    self.levels = tuple(sorted(levels))
    self._compile_step = compile_step
    self._compiled: dict[int | None, Callable] = {}

  def capacity(self, positions: int) -> int | None:
    """The smallest level >= positions; None (the dense step) when no level holds it."""
    i = int(np.searchsorted(self.levels, positions))
    return self.levels[i] if i < len(self.levels) else None

  def step_fn(self, capacity: int | None) -> Callable:
    """The jitted step for ``capacity``, compiled on first use."""
    if capacity not in self._compiled:
      self._compiled[capacity] = self._compile_step(capacity)
    return self._compiled[capacity]

  def __call__(self, state, batch, positions: int):
    """One call: ``batch`` (device arrays [S, B, L]) whose fullest step has ``positions``."""
    return self.step_fn(self.capacity(positions))(state, batch)

  @property
  def compiled(self) -> tuple[int | None, ...]:
    """Capacities compiled so far (None = dense)."""
    return tuple(self._compiled)


def plan(inputs: np.ndarray, targets: np.ndarray, order: BatchOrder, total_steps: int,
         steps_per_call: int, num_levels: int, multiple: int = 256,
         row_length: int | None = None, groups: int = 1
         ) -> tuple[np.ndarray | None, tuple[int, ...]]:
  """(per-call buffer rows of the whole run, capacity levels); (None, ()) when packing is off.

  The plan covers steps 0 .. total_steps, so a resumed run gets the same levels. With
  ``row_length`` (whole sequences in rows of L) the counts and levels are multiples of
  ``groups`` * L, else of ``groups`` * ``multiple`` (each of the ``groups`` data shards packs
  its own sequences).
  """
  lengths = real_lengths(inputs, targets)
  if lengths is None:
    return None, ()
  per_call = call_positions(lengths, order, 0, total_steps, steps_per_call, row_length, groups)
  limit = order.batch_size * np.asarray(inputs).shape[1]
  return per_call, capacity_levels(per_call, num_levels, (row_length or multiple) * groups, limit)


# ``train.packing_levels = 0``: levels by backend. Each level is one more compiled program. On
# the 2-core CPU the ML-1M SASRec preset compiles one in ~3 s against ~40 s per 47-step call, and
# 4 levels pad 0.75% of the slots where one pads 8.3% -- hours of training, seconds of compile.
# On an H100 the first call's compile took 15 s (reports/ml1m_stage1_h100) against ~0.2 s per
# call, so 3 more programs (up to ~45 s) would cost more than the padding of a 200-epoch run
# (8% of ~40 s): one level there (reports/perf_log.md, stop 14).
AUTO_LEVELS = {"cpu": 4}
AUTO_LEVELS_ACCELERATOR = 1


def num_levels(setting: int, backend: str | None = None) -> int:
  """Capacity levels for ``train.packing_levels = setting`` on ``backend`` (default: JAX's):
  the setting itself, or for 0 :data:`AUTO_LEVELS` (:data:`AUTO_LEVELS_ACCELERATOR` for a
  backend not in it)."""
  if setting:
    return setting
  backend = backend or jax.default_backend()
  return AUTO_LEVELS.get(backend, AUTO_LEVELS_ACCELERATOR)


def row_length_of(model, max_len: int) -> int | None:
  """L when ``model`` packs whole sequences into rows of L (``packs_rows``), else None."""
  return max_len if getattr(model, "packs_rows", False) else None


def for_run(train_config, inputs: np.ndarray, targets: np.ndarray, order: BatchOrder,
            total_steps: int, compile_step: Callable[[int | None], Callable],
            row_length: int | None = None, groups: int = 1
            ) -> tuple[TrainSteps, np.ndarray | None]:
  """A run's steps as the trainer builds them: (TrainSteps, per-call buffer rows or None).

  With ``train_config.compact_head`` the levels come from :func:`plan` over the whole run
  (:func:`num_levels` of ``train_config.packing_levels``); without, or when packing cannot
  apply, every call takes the dense step. ``row_length``, ``groups``: see :func:`plan`
  (:func:`row_length_of` the model; the mesh's ``data`` size).
  """
  per_call, levels = ((None, ()) if not train_config.compact_head else plan(
      inputs, targets, order, total_steps, train_config.steps_per_call,
      num_levels(train_config.packing_levels), row_length=row_length, groups=groups))
  return TrainSteps(compile_step, levels), per_call


def host_positions(batch: dict, row_length: int | None = None, groups: int = 1) -> int:
  """Buffer rows the fullest step of a host batch {inputs: [S, B, L], ...} needs (one process):
  its real positions, or with ``row_length`` L times its rows packed in ``groups`` groups."""
  lengths = np.sum(np.asarray(batch["inputs"]) > 0, axis=2)  # [S, B]
  if row_length is None:
    s = lengths.shape[0]
    return int(groups * np.max(lengths.reshape(s, groups, -1).sum(axis=2)))
  return int(row_length * np.max(group_rows(lengths, row_length, groups)))
