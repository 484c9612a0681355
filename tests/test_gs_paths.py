"""Run and cache directories on ``gs://`` (Cloud Storage), against a fake bucket.

``etils.epath`` (what dpr_jax uses for URIs) is pointed at an fsspec filesystem that keeps
``gs://bucket/x`` in ``<tmp>/gcs/bucket/x``; orbax's CheckpointManager, which writes arrays with
its own Cloud Storage driver, is wrapped to record the directory it is given and then write to the
same local mirror; TensorBoard's writer records its URI and writes nothing. A whole stage-1 run
with ``run.dir=gs://bucket/run`` and ``data.cache_dir=gs://bucket/cache`` must then find every
file in the bucket, nothing at a mangled local ``gs:/bucket`` path, and restore its checkpoints.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

fsspec = pytest.importorskip("fsspec")
from fsspec.implementations.local import LocalFileSystem  # noqa: E402


class _FakeGCS(LocalFileSystem):
  """gs://bucket/key <-> <root>/bucket/key."""

  protocol = ("gs", "gcs")
  root = ""

  @classmethod
  def _strip_protocol(cls, path):
    path = str(path)
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        return f"{cls.root}/{path[len(prefix):]}".rstrip("/")
    return super()._strip_protocol(path)


@pytest.fixture
def fake_gcs(tmp_path, monkeypatch):
  """The local folder standing for gs://; yields a record of what orbax and TensorBoard got."""
  import orbax.checkpoint as ocp
  import tensorflow as tf
  from etils.epath import backend, gpath

  from dpr_jax import checkpoint

  root = tmp_path / "gcs"
  root.mkdir()
  monkeypatch.setattr(_FakeGCS, "root", str(root))
  for name in ("gs", "gcs"):
    monkeypatch.setitem(sys.modules["fsspec.registry"]._registry, name, _FakeGCS)  # pylint: disable=protected-access
  monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)  # epath: fsspec, not tf.io.gfile
  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  seen = {"orbax": [], "tensorboard": []}
  real_manager = ocp.CheckpointManager  # checkpoint.ocp is this module: patched below

  def manager(directory, *args, **kwargs):
    seen["orbax"].append((type(directory).__name__, str(directory)))
    assert str(directory).startswith("gs://")
    return real_manager(root / str(directory)[len("gs://"):], *args, **kwargs)

  def writer(logdir, *args, **kwargs):
    seen["tensorboard"].append(str(logdir))
    return tf.summary.create_noop_writer()

  monkeypatch.setattr(checkpoint.ocp, "CheckpointManager", manager)
  monkeypatch.setattr(tf.summary, "create_file_writer", writer)
  monkeypatch.chdir(tmp_path)  # a mangled relative "gs:/..." would land here
  yield root, seen
  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access


def test_atomic_writes_and_paths_keep_the_uri(fake_gcs):
  from dpr_jax import atomic
  from dpr_jax.checkpoint import stage_dir

  root, _ = fake_gcs
  assert str(stage_dir("gs://bucket/run", 2)) == "gs://bucket/run/stage2"
  assert stage_dir("rel/run", 1) == pathlib.Path.cwd() / "rel" / "run" / "stage1"
  atomic.write_text("gs://bucket/a/b.json", "{}")
  assert (root / "bucket" / "a" / "b.json").read_text() == "{}"
  with atomic.directory("gs://bucket/d") as d:
    (d / "x").write_text("1")
  with atomic.directory("gs://bucket/d") as d:  # replaced, not merged
    (d / "y").write_text("2")
  assert sorted(p.name for p in (root / "bucket" / "d").iterdir()) == ["y"]


def test_stage1_run_on_gs(fake_gcs, tiny_config, monkeypatch):
  from dpr_jax.data import prepare as prepare_lib
  from dpr_jax.train import run as run_lib

  root, seen = fake_gcs
  config = tiny_config(**{"run.dir": "gs://bucket/run", "data.cache_dir": "gs://bucket/cache",
                          "train.num_epochs": 2, "train.eval_every_epochs": 1,
                          "model.num_blocks": 1})
  first = run_lib.run(config)

  assert {d for _, d in seen["orbax"]} == {"gs://bucket/run/stage1/checkpoints/latest",
                                           "gs://bucket/run/stage1/checkpoints/best"}
  assert seen["tensorboard"] == ["gs://bucket/run/tensorboard"]
  run = root / "bucket" / "run"
  lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
  assert sum("train/loss" in l for l in lines) == 2  # appended by rewriting, none lost
  assert json.loads((run / "results_seq.json").read_text())["results"]
  assert first["files"] == ["gs://bucket/run/results_seq.json", "gs://bucket/run/results_seq.md"]
  assert sorted(p.name for p in (run / "stage1" / "checkpoints" / "latest").iterdir()) == [
      "12", "24"]  # 400 users / batch 32 = 12 steps an epoch
  cache = root / "bucket" / "cache" / "synthetic-synthetic-L20"
  assert sorted(p.name for p in cache.iterdir()) == ["arrays.npz", "manifest.json"]
  assert not list(pathlib.Path.cwd().glob("gs:*"))  # nothing at a mangled local path

  # Everything read back through the same URIs: the data cache (no rebuild) and the checkpoints.
  monkeypatch.setattr(prepare_lib, "load_interactions", lambda *a: pytest.fail("cache missed"))
  again = run_lib.run(config, mode="eval")
  assert again["test"] == first["test"] and again["valid"] == first["valid"]


def test_data_dir_on_gs(fake_gcs, tiny_config, tmp_path, monkeypatch):
  from dpr_jax.data import prepare as prepare_lib

  root, _ = fake_gcs
  data = root / "bucket" / "data" / "ml"
  data.mkdir(parents=True)
  (data / "ml-1m.txt").write_text("".join(f"{u} {i}\n" for u in (1, 2) for i in (1, 2, 3)))
  (data / "sasrec_item_to_movie.txt").write_text("1 10\n2 20\n3 30\n")
  (data / "movies.dat").write_bytes(b"10::Ten::Drama\n20::Twenty::War\n30::Thirty::Drama\n")
  config = tiny_config(**{"data.format": "sasrec", "data.dir": "gs://bucket/data/ml",
                          "data.name": "ml"})
  split = prepare_lib.prepare(config.data)
  assert split.num_users == 2 and split.tag_names == ("Drama", "War")
  assert [s["path"] for s in split.manifest["sources"]] == [
      "gs://bucket/data/ml/ml-1m.txt", "gs://bucket/data/ml/sasrec_item_to_movie.txt",
      "gs://bucket/data/ml/movies.dat"]
  with pytest.raises(prepare_lib.DataError, match=r"^data directory gs://bucket/nope does not "):
    prepare_lib.prepare(tiny_config(**{"data.format": "sasrec", "data.dir": "gs://bucket/nope",
                                       "data.name": "x"}).data)
  monkeypatch.setattr(prepare_lib, "load_interactions", lambda *a: pytest.fail("cache missed"))
  assert prepare_lib.prepare(config.data).num_users == 2  # sources re-hashed through gs://
