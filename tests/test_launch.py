"""The command line: config mistakes are one `error:` line with exit status 2, no traceback."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT


def _launch(*args, tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), DPR_CACHE_DIR=str(tmp_path / "cache"))
  return subprocess.run([sys.executable, "-m", "dpr_jax.launch", "--config", "configs/tiny.py",
                         f"--config.run.dir={tmp_path / 'run'}", "--config.run.progress=False",
                         *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("arg, expected", [
    ("--config.train.lrr=1", 'unknown config key --config.train.lrr (lrr Did you mean "lr"'),
    ("--config.train.lr=fast", "--config.train.lr=fast: could not convert string to float"),
    ("--config.model.name=bert", "config.model.name: must be one of"),
    ("--config.mesh.model=3", "config.mesh.model=3 does not divide the 1 available devices"),
    ("--config.train.batch_size=100000", "exceeds the 400 training users"),
    ("--config.data.format=csv", "no data directory for format 'csv'"),
])
def test_config_mistakes_are_one_line_errors(arg, expected, tmp_path):
  out = _launch(arg, tmp_path=tmp_path)
  assert out.returncode == 2
  assert expected in out.stderr
  assert "Traceback" not in out.stderr
  assert not (tmp_path / "run" / "results_seq.json").exists()


def test_tiny_training_from_the_command_line(tmp_path):
  out = _launch("--config.train.num_epochs=5", tmp_path=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "wrote" in out.stdout and (tmp_path / "run" / "results_seq.md").exists()
  again = _launch("--mode=eval", tmp_path=tmp_path)
  assert again.returncode == 0, again.stderr[-2000:]
  assert again.stdout.split("wrote")[0] == out.stdout.split("wrote")[0]  # same metrics
