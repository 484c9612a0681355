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
  # Quiet console: no absl / orbax / jax INFO lines (checkpoint managers, save threads, backend
  # probing) by default; the project's own INFO lines stay. (TensorFlow's C++ start-up line,
  # "I0000 00:00:...", is not a Python log line.)
  info = [line for line in out.stderr.splitlines() if line.startswith("I") and "] " in line
          and not line.startswith("I0000 00:00:")
          and not any(own in line for own in (" trainer.py:", " run.py:", " steering.py:"))]
  assert info == [], info[:5]
  # ... and they come back when --verbosity asks for them.
  loud = _launch("--mode=eval", "--verbosity=0", tmp_path=tmp_path)
  assert loud.returncode == 0, loud.stderr[-2000:]
  assert any("checkpoint" in line for line in loud.stderr.splitlines() if line.startswith("I"))


def test_help_exits_0():
  for module in ("dpr_jax.launch", "dpr_jax.bench"):
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, (module, out.stderr[-2000:])
    assert "usage" in out.stdout.lower() or "--config" in out.stdout
  bench = out.stdout
  assert all(suite in bench for suite in ("ce", "train", "eval", "serve", "moe", "scale", "peer"))
