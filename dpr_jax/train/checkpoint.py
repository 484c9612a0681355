"""Orbax checkpoints of a training run: the latest (for resuming) and the best (for evaluating).

Layout under ``<run_dir>/checkpoints/``::

    latest/<step>/{state,meta}   periodic, the last ``keep`` kept; a restarted run resumes here
    best/<step>/{state,meta}     the state with the best validation NDCG@10 so far

``meta`` is JSON: the loop's own state (epoch, best metric, evaluations without improvement)
and the config fields a restore must agree with.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


def abstract_with_shardings(state: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying the target shardings, for a sharded restore."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)


class RunCheckpoints:
  """The latest and best checkpoints of one run (or one training stage)."""

  def __init__(self, directory: str | pathlib.Path, keep: int = 2):
    self.directory = pathlib.Path(directory).absolute()
    self.latest = ocp.CheckpointManager(
        self.directory / "latest", options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
    self.best = ocp.CheckpointManager(
        self.directory / "best", options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))

  @staticmethod
  def _save(manager: ocp.CheckpointManager, step: int, state: Any, meta: dict) -> None:
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def save_latest(self, step: int, state: Any, meta: dict) -> None:
    self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state: Any, meta: dict) -> None:
    self._save(self.best, step, state, meta)

  @staticmethod
  def _restore(manager: ocp.CheckpointManager, abstract_state: Any, check_meta=None):
    step = manager.latest_step()
    if step is None:
      return None
    # The JSON first: a checkpoint of another config is refused before any array is read.
    meta = dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
    if check_meta is not None:
      check_meta(meta)
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))
    return restored["state"], meta

  def restore_latest(self, abstract_state: Any, check_meta=None):
    """(state, meta) of the newest periodic checkpoint, or None when there is none.

    ``check_meta(meta)`` may raise to refuse the checkpoint before its arrays are read.
    """
    return self._restore(self.latest, abstract_state, check_meta)

  def restore_best(self, abstract_state: Any, check_meta=None):
    """(state, meta) of the best checkpoint, or None."""
    return self._restore(self.best, abstract_state, check_meta)

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()
