"""The command line end to end (its bad-input cases are in test_bad_input.py)."""

import os
import subprocess
import sys

from conftest import ROOT


def _launch(*args, tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), DPR_CACHE_DIR=str(tmp_path / "cache"))
  return subprocess.run([sys.executable, "-m", "dpr_jax.launch", "--config", "configs/tiny.py",
                         f"--config.run.dir={tmp_path / 'run'}", "--config.run.progress=False",
                         *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_tiny_training_from_the_command_line(tmp_path):
  out = _launch("--config.train.num_epochs=5", tmp_path=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "wrote" in out.stdout and (tmp_path / "run" / "results_seq.md").exists()
  again = _launch("--mode=eval", tmp_path=tmp_path)
  assert again.returncode == 0, again.stderr[-2000:]
  assert again.stdout.split("wrote")[0] == out.stdout.split("wrote")[0]  # same metrics
