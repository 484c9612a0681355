"""Stage 1: the backbone on next-item prediction -- one readable training loop.

``train_and_evaluate(config)`` trains (or resumes) a backbone, evaluates on validation every few
epochs with early stopping, keeps the best checkpoint, and finally evaluates the best parameters
on validation and test with full ranking. ``mode="eval"`` skips training and evaluates the best
saved checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import time
from typing import Any

import jax
import numpy as np

from dpr_jax import config as config_lib
from dpr_jax import atomic, checkpoint, distributed, sharding
from dpr_jax.checkpoint import RunCheckpoints, abstract_with_shardings, fingerprint_differences
from dpr_jax.data import pipeline
from dpr_jax.data.prepare import prepare
from dpr_jax.data.split import SplitData
from dpr_jax.errors import CheckpointError, ConfigError
from dpr_jax.eval import report
from dpr_jax.eval.ranking import backbone_evaluator
from dpr_jax.models import build_backbone
from dpr_jax.train import loop, packing
from dpr_jax.train.loop import NonFiniteLoss  # noqa: F401  (re-exported)
from dpr_jax.train.logbook import Logbook
from dpr_jax.train.step import create_state, jit_train_step, make_optimizer, make_train_step

METRIC_COLUMNS = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]


@dataclasses.dataclass
class Schedule:
  """The loop's step arithmetic; every boundary is a whole number of jit calls."""

  steps_per_epoch: int
  steps_per_call: int
  eval_every: int  # steps between validations
  total: int  # steps in the whole run

  @classmethod
  def from_config(cls, train_config, steps_per_epoch: int) -> "Schedule":
    s = train_config.steps_per_call
    round_up = lambda n: max(s, -(-n // s) * s)
    return cls(steps_per_epoch, s, round_up(train_config.eval_every_epochs * steps_per_epoch),
               round_up(train_config.num_epochs * steps_per_epoch))

  def epoch(self, step: int) -> float:
    return step / self.steps_per_epoch


def train_and_evaluate(config, mode: str = "train") -> dict[str, Any]:
  """Runs stage 1 and returns ``{"valid": metrics, "test": metrics, "files": [...]}``."""
  # ============================================================================ Config & devices
  mesh = check_config(config)
  run_dir = atomic.as_path(config.run.dir)
  is_main = jax.process_index() == 0
  logging.info("mesh %s on %s", dict(mesh.shape), report.device_description())

  # ============================================================================ Data
  data = distributed.first_process_then_others("prepare", lambda: prepare(config.data))
  # Packed steps on several `data` shards: each batch's columns are dealt so that the shards
  # pack alike (pipeline.balance_groups); the batches themselves are unchanged.
  groups = config.train.pack_groups or mesh.shape["data"]
  lengths = (packing.real_lengths(data.train_inputs, data.train_targets)
             if config.train.compact_head and groups > 1 else None)
  order = pipeline.BatchOrder(data.num_users, config.train.batch_size, config.train.seed,
                              lengths=lengths, groups=groups)
  schedule = Schedule.from_config(config.train, order.steps_per_epoch)

  # ============================================================================ Model & state
  model = build_backbone(config.model, data.num_items, data.max_len)
  tx = make_optimizer(config.train, order.steps_per_epoch)
  state, shardings = create_state(model, tx, mesh, config.train.seed, data.max_len)
  abstract = abstract_with_shardings(state, shardings)

  # ============================================================================ Checkpoints
  ckpts = RunCheckpoints(checkpoint.stage_dir(run_dir, 1) / "checkpoints")
  fingerprint = checkpoint.backbone_fingerprint(config, data)
  meta = {"best_ndcg@10": -1.0, "best_step": -1, "evals_since_best": 0, "done": False,
          "fingerprint": fingerprint}
  restored = _restore_checked(ckpts.restore_latest, abstract, fingerprint, ckpts.directory)
  if restored is not None:
    state, meta = restored
    ckpts.discard_after(int(state.step))
    logging.info("resuming from step %d (%s)", int(state.step), ckpts.directory / "latest")

  # ============================================================================ Compiled steps
  # Packed steps: one program per capacity level, each call's level chosen on the host from
  # the batch order and the example lengths, which every process holds (train/packing.py).
  # Each `data` shard packs its own sequences (groups), so every device does its share.
  train_steps, per_call = packing.for_run(
      config.train, data.train_inputs, data.train_targets, order, schedule.total,
      lambda capacity: jit_train_step(make_train_step(
          model, tx, data.num_items, config.train.seed, head_capacity=capacity, groups=groups),
          mesh, shardings),
      row_length=packing.row_length_of(model, data.max_len), groups=groups)
  if train_steps.levels:
    logging.info("packed training steps, capacities %s of B*L = %d", train_steps.levels,
                 config.train.batch_size * data.max_len)
  evaluate = backbone_evaluator(model, config, mesh, shardings.params, data.num_items)
  logbook = Logbook(run_dir, enabled=is_main)

  # ============================================================================ Training loop
  if mode == "train" and not meta["done"]:
    state, meta = _train_loop(config, data, order, schedule, mesh, state, meta, train_steps,
                              per_call, evaluate, ckpts, logbook, is_main)
  ckpts.wait()

  # ============================================================================ Final evaluation
  best = _restore_checked(ckpts.restore_best, abstract, fingerprint, ckpts.directory)
  if best is None:
    if mode == "eval":
      raise CheckpointError(f"no checkpoint in {ckpts.directory}; train first (--mode train)")
    best = (state, meta)
  params = best[0].params
  results = {split: evaluate(params, data, split) for split in ("valid", "test")}
  ckpts.close()
  rows = {}
  for split, m in results.items():
    rows[f"{split} (seen masked)"] = {k: m[k] for k in METRIC_COLUMNS}
    rows[f"{split} (unmasked)"] = {k: m[f"{k}/unmasked"] for k in METRIC_COLUMNS}
  fields = report.protocol_fields(data.manifest, config.train.seed, masking="seen items masked"
                                  " (primary); unmasked reported beside")
  fields |= {"model": config.model.name, "best_step": int(best[0].step),
             "best_epoch": round(schedule.epoch(int(best[0].step)), 2),
             "epochs_trained": round(schedule.epoch(int(state.step)), 2)}
  files = []
  if is_main:
    files = list(report.write_results(run_dir, "results_seq", rows, fields, METRIC_COLUMNS))
    logbook.write(int(state.step), {f"test/{k}": v for k, v in results["test"].items()})
  logbook.close()
  return {**results, "files": [str(f) for f in files], "protocol": fields}


def check_config(config):
  """Validates the config and builds its mesh (ConfigError naming the key); returns the mesh."""
  config_lib.validate(config)
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
  if config.train.batch_size % mesh.shape["data"]:
    raise ConfigError(f"config.train.batch_size={config.train.batch_size} is not divisible by the"
                      f" data mesh axis ({mesh.shape['data']})")
  _check_creatable("run.dir", config.run.dir)
  return mesh


def _check_creatable(key: str, directory: str) -> None:
  """ConfigError unless the local folder ``directory`` exists or can be created (nothing is
  created here). URIs (gs://...) are left to the storage layer."""
  if "://" in directory:
    return
  path = pathlib.Path(directory).expanduser().absolute()
  existing = next(p for p in (path, *path.parents) if p.exists())
  if not existing.is_dir():
    raise ConfigError(f"config.{key}={directory}: {existing} is a file, not a folder")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ConfigError(f"config.{key}={directory}: {existing} is not writable")


def _restore_checked(restore_fn, abstract, fingerprint: dict, where: pathlib.Path):
  """Restores via ``restore_fn`` after checking the checkpoint was made by a compatible config."""

  def check(meta: dict):
    if meta.get("fingerprint") != fingerprint:
      raise CheckpointError(
          f"checkpoint in {where} was made with another model, dataset or optimizer"
          f" ({fingerprint_differences(meta.get('fingerprint') or {}, fingerprint)});"
          " use a fresh --config.run.dir or the run's own settings")

  try:
    return restore_fn(abstract, check)
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"checkpoint in {where} does not fit this config ({e})") from None


def stop_reason(train_config, evals_since_best: int, ndcg: float, elapsed_s: float) -> str | None:
  """Why stage 1 stops after a validation (None: it goes on). The PyTorch peer
  (``bench ttq``) stops by the same rules."""
  if 0 < train_config.patience <= evals_since_best:
    return f"no improvement in {train_config.patience} evaluations"
  if 0 < train_config.target_ndcg <= ndcg:
    return "validation NDCG@10 reached train.target_ndcg"
  if 0 < train_config.time_budget_min * 60 <= elapsed_s:
    return "train.time_budget_min is spent"
  return None


def _train_loop(config, data: SplitData, order, schedule: Schedule, mesh, state, meta,
                train_steps: packing.TrainSteps, per_call: np.ndarray | None, evaluate,
                ckpts: RunCheckpoints, logbook: Logbook, is_main: bool):
  start = int(state.step)
  dataset = pipeline.train_dataset(
      {"inputs": data.train_inputs, "targets": data.train_targets}, order, start,
      schedule.total - start, schedule.steps_per_call)

  def steps(state, batch, step: int):
    # Positions of the call's fullest global batch (the same on every process); no plan = dense.
    positions = (per_call[step // schedule.steps_per_call] if per_call is not None
                 else np.iinfo(np.int64).max)
    return train_steps(state, batch, positions)

  def at_point(point: loop.Point):  # validation, early stopping, checkpoints
    val = evaluate(point.state.params, data, "valid")
    improved = val["ndcg@10"] > meta["best_ndcg@10"]
    meta["evals_since_best"] = 0 if improved else meta["evals_since_best"] + 1
    if improved:
      meta["best_ndcg@10"], meta["best_step"] = val["ndcg@10"], point.step
    elapsed = point.elapsed_s()
    # Process 0's clock decides the time budget for every process (a broadcast, only if set).
    budget_clock = (distributed.agreed_seconds(elapsed) if config.train.time_budget_min > 0
                    else elapsed)
    why = stop_reason(config.train, meta["evals_since_best"], val["ndcg@10"], budget_clock)
    meta["done"] = why is not None or point.step == schedule.total
    logbook.write(point.step, {"train/loss": point.mean("loss"), "valid/ndcg@10": val["ndcg@10"],
                               "valid/recall@10": val["recall@10"],
                               "time/elapsed_s": elapsed},
                  epoch=round(schedule.epoch(point.step), 2), compile_s=point.compile_s,
                  unix_s=round(time.time(), 3))
    if improved:
      ckpts.save_best(point.step, point.state, meta)
    ckpts.save_latest(point.step, point.state, meta)
    if why is not None:
      logging.info("early stop at step %d: %s", point.step, why)
    return {"loss": f"{point.mean('loss'):.3f}", "val_ndcg10": f"{val['ndcg@10']:.4f}"}, (
        why is not None)

  state = loop.run(state, dataset, steps, mesh, start=start, total=schedule.total,
                   steps_per_call=schedule.steps_per_call, every=schedule.eval_every,
                   title=f"stage 1 ({config.model.name})",
                   show=config.run.progress and is_main, at_point=at_point, ckpts=ckpts,
                   lr_key="train.lr")
  return state, meta
