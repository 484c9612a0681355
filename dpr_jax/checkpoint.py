"""Orbax checkpoints of a run: where they live, what they must agree with, how they are read.

Layout under ``<run_dir>/stage<k>/checkpoints/`` (stage 2's request parser:
``<run_dir>/stage2/parser/checkpoints/``, member k > 0 of its ensemble under
``<run_dir>/stage2/parser/member<k>/checkpoints/``)::

    latest/<step>/{state,meta}   periodic, the last ``keep`` kept; a restarted run resumes here
    best/<step>/{state,meta}     the states with the best validation NDCG@10 so far (last 2)

``state`` is the stage's ``TrainState`` (step, params, optimizer state); ``meta`` is JSON: the
loop's own state (epoch, best metric, evaluations without improvement) and the *fingerprint*,
the config fields a restore must agree with (:func:`backbone_fingerprint`,
:func:`head_fingerprint`, :func:`parser_fingerprint`).

Two ways to read: training resumes the whole state (``RunCheckpoints.restore_latest`` with the
abstract state of its own optimizer); whoever only *uses* a trained stage -- the next stage,
serving, evaluation -- reads its parameters alone (:func:`backbone_params`, :func:`head_params`,
:func:`parser_params`), without knowing the optimizer that made them: the tree to read comes
from the checkpoint's own metadata.

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

from dpr_jax import atomic, faults
from dpr_jax import config as config_lib
from dpr_jax.errors import CheckpointError


# ================================================================================ where
def stage_dir(run_dir: str | pathlib.Path, stage: int) -> pathlib.Path:
  """``<run_dir>/stage<k>``; absolute when local, a ``gs://`` URI kept as it is."""
  return atomic.as_path(run_dir) / f"stage{stage}"


def parser_dir(run_dir: str | pathlib.Path, member: int = 0, group: str = "") -> pathlib.Path:
  """The request parser's checkpoints (trained in stage 2): member ``member`` of the ensemble
  (``parser.members``); member 0 is where a single parser has always lived. ``group="mix"``:
  the parsers of the second encoder (``parser.mix_encoder``), ``parser/mix<k>/checkpoints``."""
  base = stage_dir(run_dir, 2) / "parser"
  if group:
    return base / f"{group}{member}" / "checkpoints"
  return base / "checkpoints" if member == 0 else base / f"member{member}" / "checkpoints"


# ================================================================================ fingerprints
def tunes_backbone(config, stage: int) -> bool:
  """Whether ``stage`` trains the backbone too (stage 3 with ``stage3.backbone_lr > 0``)."""
  return stage == 3 and config.stage3.backbone_lr > 0


def backbone_fingerprint(config, data) -> dict:
  """What a stage-1 checkpoint must agree with to be restored into this run."""
  return {"model": config_lib.model_fingerprint(config.model), "num_items": data.num_items,
          "max_len": data.max_len,
          # clipping and a schedule change the optimizer state tree
          "grad_clip": config.train.grad_clip > 0,
          **({"lr_schedule": config.train.lr_schedule}
             if config.train.lr_schedule != "constant" else {})}


def head_fingerprint(config, data, stage: int) -> dict:
  """What a stage-2/3 checkpoint must agree with (training adds its example count)."""
  out = {"stage": stage, "dpr": config_lib.dpr_fingerprint(config.dpr),
         "model": config_lib.model_fingerprint(config.model), "num_items": data.num_items}
  if tunes_backbone(config, stage):  # (absent otherwise, so earlier runs still restore)
    out["backbone_lr"] = config.stage3.backbone_lr
  if stage == 3 and config.dpr.user_profile:  # (likewise)
    out["user_profile"] = True
  return out


# How the members are combined and their reading shown, not what one member is: never part of
# a member's fingerprint.
_PARSER_ENSEMBLE = ("members", "mix_encoder", "mix_members", "mix_weight", "unsure_at")


def parser_fingerprint(config, tag_names) -> dict:
  """What a request-parser checkpoint (one member of the ensemble) must agree with; the
  ensemble's size is not part of it, so member k serves in any ensemble of more than k. A
  setting added later is left out at the value earlier checkpoints were trained with
  (config.EARLIER_PARSER_VALUES), so they still restore."""
  earlier = config_lib.EARLIER_PARSER_VALUES
  parser = {k: v for k, v in config.parser.to_dict().items()
            if k not in _PARSER_ENSEMBLE and not (k in earlier and v == earlier[k])}
  out = {"parser": parser, "tags": list(tag_names), "domain": config.dpr.domain}
  if config.dpr.text_encoder:  # the parser reads that encoder's token states (default: left out)
    out["text_encoder"] = config.dpr.text_encoder
  return out


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


def has_checkpoint(directory: str | pathlib.Path) -> bool:
  """Whether a :class:`RunCheckpoints` folder holds any saved step (latest or best), readable or
  not; a missing folder holds none. Reads the folder only (creates nothing)."""
  folder = atomic.as_path(directory)
  return any(sub.is_dir() and any(step.name.isdigit() for step in sub.iterdir())
             for sub in (folder / "latest", folder / "best") if sub.is_dir())


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

    def manager(kind: str, max_to_keep: int) -> ocp.CheckpointManager:
      # Both items' handlers named up front: a restore of one item (the JSON meta first) then
      # reads it alone, without orbax warning once per call about the item it leaves unread.
      return ocp.CheckpointManager(
          self.directory / kind, options=options(max_to_keep, kind),
          item_handlers={"state": ocp.StandardCheckpointHandler(),
                         "meta": ocp.JsonCheckpointHandler()})

    try:
      self.latest = manager("latest", keep)
      self.best = manager("best", 2)
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

  def _restore(self, manager: ocp.CheckpointManager, abstract_state: Any, check_meta=None,
               quarantine: bool = True):
    """The newest readable checkpoint of ``manager`` as (state, meta), or None if it has none.

    ``abstract_state`` is the tree to read, or a function ``metadata -> tree`` of the step's
    metadata (:meth:`read_params`). With ``quarantine=False`` (readers that only use a run)
    nothing is moved: an unreadable checkpoint is skipped with the warning.

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
        target = (abstract_state(manager.item_metadata(step)["state"])
                  if callable(abstract_state) else abstract_state)
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target)))
        if i and quarantine:
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

  def read_params(self, which: str, check_meta=None, sharding=None):
    """The ``params`` of the newest readable ``which`` ("latest" or "best") checkpoint, or None.

    Read without the optimizer that wrote them: the tree comes from the checkpoint's metadata
    and every array lands on ``sharding`` (default: the first local device). The optimizer
    state is read alongside (orbax reads a saved item whole) and dropped.
    """
    where = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def abstract(metadata):
      tree = getattr(metadata, "tree", metadata)
      return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=where), tree)

    restored = self._restore(self.latest if which == "latest" else self.best, abstract,
                             check_meta, quarantine=False)
    return None if restored is None else restored[0]["params"]

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


# ================================================================================ trained stages
def fingerprint_check(expected: dict, where, ignore: tuple[str, ...] = ()):
  """A ``check_meta`` refusing a checkpoint whose fingerprint differs from ``expected``."""

  def check(meta: dict):
    got = {k: v for k, v in (meta.get("fingerprint") or {}).items() if k not in ignore}
    if got != expected:
      saved, wanted = _with_earlier_parser_values(got), _with_earlier_parser_values(expected)
      flags = _parser_flags(saved, wanted)
      raise CheckpointError(f"checkpoint in {where} was made with another config"
                            f" ({fingerprint_differences(saved, wanted)}); use the run's own"
                            f" settings{f' ({flags})' if flags else ''} or a fresh"
                            " --config.run.dir")

  return check


def _with_earlier_parser_values(fingerprint: dict) -> dict:
  """A parser fingerprint with the settings it leaves out at their earlier value written in
  (for messages: 'parser.clause_cue: False -> True', not 'unset -> True'); others unchanged."""
  if not isinstance(fingerprint.get("parser"), dict):
    return fingerprint
  return fingerprint | {"parser": config_lib.EARLIER_PARSER_VALUES | fingerprint["parser"]}


def _parser_flags(saved: dict, wanted: dict) -> str:
  """The ``--config.parser.*`` flags that give ``wanted``'s parser settings ``saved``'s values
  (numbers and switches only), e.g. for a parser trained before a setting's default changed."""
  a, b = saved.get("parser"), wanted.get("parser")
  if not (isinstance(a, dict) and isinstance(b, dict)):
    return ""
  return " ".join(f"--config.parser.{k}={v}" for k, v in sorted(a.items())
                  if k in b and b[k] != v and isinstance(v, (bool, int, float)))


def _read(directory, which: str, expected: dict, missing: str, sharding=None,
          ignore: tuple[str, ...] = ()):
  ckpts = RunCheckpoints(directory)
  try:
    params = ckpts.read_params(which, fingerprint_check(expected, directory, ignore), sharding)
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"checkpoint in {directory} does not fit this config ({e})") from None
  finally:
    ckpts.close()
  if params is None:
    raise CheckpointError(f"no checkpoint in {directory}; {missing}")
  return params


def backbone_params(config, data, sharding=None):
  """Stage 1's best parameters (the backbone and its item table)."""
  return _read(stage_dir(config.run.dir, 1) / "checkpoints", "best",
               backbone_fingerprint(config, data), "run stage 1 first (--config.stages=1,2,3)",
               sharding)


def load_backbone(config, data, mesh):
  """(model, params) of stage 1's best checkpoint, laid out over ``mesh`` as training lays them
  out (the parameters' logical axes and ``sharding.LOGICAL_AXIS_RULES``)."""
  import jax.numpy as jnp

  from dpr_jax import sharding
  from dpr_jax.models import build_backbone

  model = build_backbone(config.model, data.num_items, data.max_len)
  boxed = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)},
                                            jnp.zeros((1, data.max_len), jnp.int32))["params"])
  params = backbone_params(config, data, sharding.replicated(mesh))
  return model, jax.device_put(params, sharding.tree_shardings(mesh, boxed))


def head_params(config, data, stage: int = 3, sharding=None) -> tuple[Any, Any]:
  """``stage``'s final parameters as (head params, tuned backbone params or None).

  The fingerprint is checked except for the training example count, which only the training
  run knows. The backbone part is present when the stage tuned it (:func:`tunes_backbone`).
  """
  params = _read(stage_dir(config.run.dir, stage) / "checkpoints", "latest",
                 head_fingerprint(config, data, stage),
                 "train the DPR stages first (--config.stages=1,2,3)", sharding,
                 ignore=("examples",))
  return split_backbone(params)


def parser_params(config, tag_names, sharding=None):
  """The trained request parser's parameters: its ``parser.members`` members stacked on a
  leading axis (every leaf ``[K, ...]``; dpr_jax.prompts.reader.make_parse averages them)."""
  members = [_read(parser_dir(config.run.dir, k), "latest", parser_fingerprint(config, tag_names),
                   "train stage 2 with dpr.reader='parser' and these parser settings, or serve"
                   " with --config.dpr.reader=rules" if k == 0
                   else missing_members(k, config.parser.members), sharding)
             for k in range(config.parser.members)]
  return stack_members(members)


def mix_config(config):
  """The config the second encoder's parsers are trained and read with: ``config`` with
  ``dpr.text_encoder`` set to ``parser.mix_encoder`` (so their fingerprint names it)."""
  mixed = config.copy_and_resolve_references()
  mixed.dpr.text_encoder = config.parser.mix_encoder
  return mixed


def mix_parser_params(config, tag_names, sharding=None):
  """The second encoder's parsers (``parser.mix_members``, stacked like
  :func:`parser_params`), or None without ``parser.mix_encoder``."""
  if not config.parser.mix_encoder:
    return None
  mixed = mix_config(config)
  return stack_members([
      _read(parser_dir(config.run.dir, k, "mix"), "latest", parser_fingerprint(mixed, tag_names),
            f"train stage 2 with parser.mix_encoder={config.parser.mix_encoder!r} (the run has"
            f" {k} of its {config.parser.mix_members} parsers), or serve without it", sharding)
      for k in range(config.parser.mix_members)])


def missing_members(found: int, members: int) -> str:
  """What to do when a run's stage 2 holds ``found`` parsers and ``parser.members`` asks for
  more (a run trained before the default grew)."""
  return (f"the run's stage 2 has {found} request parser(s) and parser.members={members} asks"
          f" for {members}: read with --config.parser.members={found}, or train the others"
          " with --config.stages=2 (what the run has is restored)")


def stack_members(members: list) -> Any:
  """Parameter trees of an ensemble's members -> one tree, leaves ``[K, ...]``."""
  import jax.numpy as jnp

  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)


def split_backbone(params) -> tuple[Any, Any]:
  """Stage params -> (head params, tuned backbone params or None)."""
  if "backbone" not in params:
    return params, None
  return {k: v for k, v in params.items() if k != "backbone"}, params["backbone"]
