"""The one training loop every stage runs: stage 1, the request parser, stages 2 and 3.

A stage brings what is its own and the loop does the rest::

    steps(state, batch, step) -> (state, metrics)   # `steps_per_call` optimizer steps, one call
    dataset                                          # host batches [S, B, ...] (data.pipeline)
    at_point(Point) -> (postfix, stop)               # validation / logging / checkpoints

The loop owns iteration, fault-injection points (``faults.py``), the progress bar (rate
and ETA per optimizer step), compile timing, fetching the device metrics only at points (not
every call), and the non-finite check (after waiting for the last checkpoint, so the error can
name it). A point falls every ``every`` steps and at the last step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np

from dpr_jax import console
from dpr_jax.data import pipeline
from dpr_jax.errors import UserError
from dpr_jax import faults


class NonFiniteLoss(UserError):
  """The loss became NaN/inf; the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class Point:
  """What a stage's hook sees every ``every`` steps."""

  step: int  # optimizer steps done
  state: Any  # the TrainState after them (device arrays)
  metrics: dict[str, np.ndarray]  # float32[steps since the last point] per name
  started: float  # time.time() when the loop started
  compile_s: float  # the first call, compilation included

  def mean(self, name: str) -> float:
    return float(np.mean(self.metrics[name]))

  def elapsed_s(self) -> float:
    """Wall seconds since the loop started, read now (after the hook's own work so far)."""
    return time.time() - self.started


def run(state, dataset: Iterable, steps: Callable, mesh, *, start: int, total: int,
        steps_per_call: int, every: int, title: str, show: bool,
        at_point: Callable[[Point], tuple[dict[str, str], bool]], ckpts, lr_key: str):
  """Runs ``steps`` over ``dataset`` from step ``start`` to ``total`` (or a hook's stop).

  ``dataset`` yields host batches of ``steps_per_call`` steps (``pipeline.train_dataset``);
  each becomes a global array on ``mesh`` before ``steps(state, batch, step)``. ``ckpts`` (a
  ``RunCheckpoints``) is waited for before a non-finite loss is reported; ``lr_key`` names the
  config key the error suggests lowering. Returns the last state.
  """
  t0, compile_s, step = time.time(), None, start
  pending = []  # device metrics; fetched at points only
  bar = console.StepBar(total, start, title, disable=not show)
  try:
    for host_batch in pipeline.iterate(dataset):
      state, metrics = steps(state, pipeline.to_global(host_batch, mesh), step)
      faults.point("step")
      pending.append(metrics)
      if compile_s is None:
        jax.block_until_ready(state.step)
        compile_s = time.time() - t0
      step += steps_per_call
      bar.update(steps_per_call)
      if step % every and step != total:
        continue

      # ---------------------------------------------------------------- a point
      fetched = jax.device_get(pending)
      pending.clear()
      values = {k: np.concatenate([np.ravel(m[k]) for m in fetched]) for k in fetched[0]}
      if not np.all(np.isfinite(values["loss"])):
        ckpts.wait()
        raise NonFiniteLoss(
            f"{title}: loss became non-finite before step {step}; the last good checkpoint is"
            f" kept in {ckpts.directory} (try a lower --config.{lr_key})")
      postfix, stop = at_point(Point(step, state, values, t0, compile_s))
      bar.set_postfix(**postfix)
      if stop:
        break
  finally:
    bar.close()
  return state
