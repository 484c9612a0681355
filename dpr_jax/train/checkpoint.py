"""Orbax checkpoints of a training run: the latest (for resuming) and the best (for evaluating).

Layout under ``<run_dir>/checkpoints/``::

    latest/<step>/{state,meta}   periodic, the last ``keep`` kept; a restarted run resumes here
    best/<step>/{state,meta}     the states with the best validation NDCG@10 so far (last 2)

``meta`` is JSON: the loop's own state (epoch, best metric, evaluations without improvement)
and the config fields a restore must agree with.

The run directory may be local or a ``gs://`` URI: orbax reads and writes Cloud Storage itself
(the directory reaches it as an ``etils.epath.Path``, never through ``pathlib``).
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
import shutil
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

from dpr_jax import atomic
from dpr_jax.errors import CheckpointError
from dpr_jax.train import faults


def fingerprint_differences(saved: dict, wanted: dict, prefix: str = "") -> str:
  """'key: saved -> wanted' for every fingerprint entry that differs (nested dicts flattened)."""
  out = []
  for key in sorted(set(saved) | set(wanted)):
    a, b = saved.get(key, "unset"), wanted.get(key, "unset")
    if isinstance(a, dict) and isinstance(b, dict):
      inner = fingerprint_differences(a, b, f"{prefix}{key}.")
      out += [inner] if inner else []
    elif a != b:
      out.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return "; ".join(out)


def abstract_with_shardings(state: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying the target shardings, for a sharded restore."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)


class RunCheckpoints:
  """The latest and best checkpoints of one run (or one training stage)."""

  def __init__(self, directory: str | pathlib.Path, keep: int = 2):
    self.directory = atomic.as_path(directory)  # absolute local path, or gs://... kept intact
    # In a multi-process run orbax names its cross-process barriers after the step only, so two
    # managers saving the same step at once (best and latest at a validation) would join each
    # other's barrier ("Barrier _async_write_complete.<step> is already ongoing") and hang. Each
    # manager gets its own key prefix, the same on every process (from the shared path).
    tag = hashlib.sha1(str(self.directory).encode()).hexdigest()[:10]

    def options(max_to_keep: int, kind: str) -> ocp.CheckpointManagerOptions:
      return ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=True,
          multiprocessing_options=ocp.options.MultiprocessingOptions(
              barrier_sync_key_prefix=f"{kind}-{tag}"))

    try:
      self.latest = ocp.CheckpointManager(self.directory / "latest", options=options(keep, "latest"))
      self.best = ocp.CheckpointManager(self.directory / "best", options=options(2, "best"))
    except OSError as e:
      raise CheckpointError(f"cannot create the checkpoint folder {self.directory}"
                            f" ({e.strerror or e}); check --config.run.dir") from None

  @staticmethod
  def _save(manager: ocp.CheckpointManager, step: int, state: Any, meta: dict) -> None:
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def save_latest(self, step: int, state: Any, meta: dict) -> None:
    self._save(self.latest, step, state, meta)
    faults.point("save")  # tests kill the process here, while the save is still being written

  def save_best(self, step: int, state: Any, meta: dict) -> None:
    self._save(self.best, step, state, meta)

  def _restore(self, manager: ocp.CheckpointManager, abstract_state: Any, check_meta=None):
    """The newest readable checkpoint of ``manager`` as (state, meta), or None if it has none.

    A checkpoint that cannot be read (truncated or corrupted files) is skipped with a warning,
    moved aside to ``<checkpoints>/unreadable/`` (so the run can save that step again), and the
    previous one is tried. A half-written one (killed during a save) is never listed: orbax
    finalises a step only once all of it is on disk.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    for i, step in enumerate(steps):
      try:
        # The JSON first: a checkpoint of another config is refused before any array is read.
        meta = dict(manager.restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore()))["meta"])
        if check_meta is not None:
          check_meta(meta)
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state)))
        if i:
          self._quarantine(manager, steps[:i])
        return restored["state"], meta
      except CheckpointError:
        raise
      except Exception as e:  # noqa: BLE001 -- any unreadable checkpoint: try the previous one
        logging.warning("checkpoint %s/%d is unreadable (%s: %s); falling back to the previous"
                        " one", manager.directory, step, type(e).__name__, str(e)[:200])
    if steps:
      raise CheckpointError(
          f"no readable checkpoint in {manager.directory} (tried steps {steps}: corrupted, or"
          " made by an incompatible config); use a fresh --config.run.dir")
    return None

  def _quarantine(self, manager: ocp.CheckpointManager, steps: list[int]) -> None:
    where = self.directory / "unreadable"
    where.mkdir(parents=True, exist_ok=True)
    for step in steps:
      source = atomic.as_path(str(manager.directory)) / str(step)
      target = where / f"{source.parent.name}-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
      if atomic.is_uri(source):  # object stores have no folder rename: drop it instead
        manager.delete(step)
        logging.warning("deleted unreadable checkpoint %s", source)
        continue
      shutil.move(str(source), str(target))
      logging.warning("moved unreadable checkpoint %s to %s", source, target)
    manager.reload()

  def discard_after(self, step: int) -> None:
    """Deletes checkpoints newer than ``step`` (left by a run that resumes from ``step``).

    After a fallback to an older checkpoint the run replays the later steps (deterministically)
    and must be able to save them again.
    """
    for manager in (self.latest, self.best):
      for s in manager.all_steps():
        if s > step:
          manager.delete(s)

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
