"""Crash safety: SIGKILL mid-run and resume, corrupted checkpoints, non-finite loss."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT
from dpr_jax.train import trainer


def _cli(run_dir: pathlib.Path, cache: pathlib.Path, kill_at: str | None = None):
  env = dict(os.environ, PYTHONPATH=str(ROOT), DPR_CACHE_DIR=str(cache))
  env.pop("DPR_KILL_AT", None)
  if kill_at:
    env["DPR_KILL_AT"] = kill_at
  return subprocess.run(
      [sys.executable, "-m", "dpr_jax.launch", "--config", "configs/tiny.py",
       f"--config.run.dir={run_dir}", "--config.run.progress=False", "--config.train.num_epochs=10"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _final_params(run_dir: pathlib.Path) -> dict:
  manager = ocp.CheckpointManager(run_dir / "stage1" / "checkpoints" / "latest")
  step = manager.latest_step()
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  manager.close()
  return {"step": step, "params": state["params"]}


def _results(run_dir: pathlib.Path) -> dict:
  return json.loads((run_dir / "results_seq.json").read_text())["results"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  base = tmp_path_factory.mktemp("reference")
  out = _cli(base / "run", base / "cache")
  assert out.returncode == 0, out.stderr[-2000:]
  return base / "run", _results(base / "run"), _final_params(base / "run")


def test_sigkill_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
  _, want_results, want = reference
  # Killed during a step (after the first checkpoint), then, resumed, killed while writing the
  # last checkpoint; the third start finishes the run.
  for kill_at in ("step:20", "save:1"):
    killed = _cli(tmp_path / "run", tmp_path / "cache", kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, kill_at
    assert not (tmp_path / "run" / "results_seq.json").exists()  # nothing half-written
  resumed = _cli(tmp_path / "run", tmp_path / "cache")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert _results(tmp_path / "run") == want_results
  got = _final_params(tmp_path / "run")
  assert got["step"] == want["step"]
  flat_got = dict(_leaves(got["params"]))
  for path, value in _leaves(want["params"]):
    np.testing.assert_array_equal(np.asarray(flat_got[path]), np.asarray(value), err_msg=path)


def _leaves(tree, prefix=""):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _leaves(v, f"{prefix}/{k}")
  else:
    yield prefix, tree


def test_corrupted_latest_checkpoint_falls_back_to_the_previous(tiny_config, tmp_path, caplog,
                                                               preempted_after_saves):
  short = {"train.num_epochs": 15}  # saves at epochs 5, 10, 15: the 2nd is corrupted
  straight = trainer.train_and_evaluate(tiny_config(**{"run.dir": str(tmp_path / "a")}, **short))
  config = tiny_config(**{"run.dir": str(tmp_path / "b")}, **short)
  with preempted_after_saves(2):
    trainer.train_and_evaluate(config)
  latest = tmp_path / "b" / "stage1" / "checkpoints" / "latest"
  newest = max((p for p in latest.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
  for f in (newest / "state").rglob("*"):
    if f.is_file() and f.stat().st_size > 64:
      f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])  # truncate every data file
  with caplog.at_level("WARNING"):
    resumed = trainer.train_and_evaluate(config)
  assert any("unreadable" in r.getMessage() and "falling back" in r.getMessage()
             for r in caplog.records)
  assert resumed["test"] == straight["test"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path,
                                                                  preempted_after_saves):
  with preempted_after_saves(1):
    trainer.train_and_evaluate(tiny_config())
  with pytest.raises(trainer.NonFiniteLoss, match="non-finite"):
    trainer.train_and_evaluate(tiny_config(**{"train.lr": 1e12}))
  kept = _final_params(tmp_path / "run")
  assert kept["step"] == 60
  assert all(np.all(np.isfinite(np.asarray(v))) for _, v in _leaves(kept["params"]))
