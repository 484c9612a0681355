"""Shared test setup: quiet TF, a tiny config factory and the shared ML-1M location."""

from __future__ import annotations

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_ML1M = ROOT.parent / "shared" / "data" / "ml-1m"
sys.path.insert(0, str(ROOT / "configs"))


@pytest.fixture
def tiny_config(tmp_path):
  """The tiny synthetic preset, writing into tmp_path. Call with the model name."""
  import tiny  # configs/tiny.py

  def make(model: str = "sasrec", **overrides):
    c = tiny.get_config(model)
    c.run.dir = str(tmp_path / "run")
    c.data.cache_dir = str(tmp_path / "cache")
    c.run.progress = False
    for key, value in overrides.items():
      node = c
      *parents, leaf = key.split(".")
      for p in parents:
        node = node[p]
      node[leaf] = value
    return c

  return make
