"""Joining a multi-process run: the guard on JAX's persistent compilation cache (the runs
themselves are in test_multihost.py)."""

import jax
import pytest

from dpr_jax import distributed


@pytest.fixture
def cache_flags(tmp_path):
  """A persistent cache configured and enabled for the test; the flags restored after it."""
  before = jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir
  if before[1] is None:
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "xla"))
  jax.config.update("jax_enable_compilation_cache", True)
  yield
  jax.config.update("jax_enable_compilation_cache", before[0])
  if before[1] is None:
    jax.config.update("jax_compilation_cache_dir", None)


@pytest.mark.parametrize("processes,platform,off", [(2, "cpu", True), (1, "cpu", False),
                                                    (2, "tpu", False)])
def test_the_compilation_cache_is_off_only_in_a_multi_process_cpu_run(
    cache_flags, monkeypatch, caplog, processes, platform, off):
  # On a rerun with the cache, process 0 loads its programs and the others compile theirs; with
  # jax 0.12.1 a two-process run then hung in its first collective (dpr_jax.distributed).
  monkeypatch.setattr(jax, "process_count", lambda: processes)
  monkeypatch.setattr(jax, "default_backend", lambda: platform)
  with caplog.at_level("WARNING"):
    assert distributed.guard_compilation_cache() is off
  assert jax.config.jax_enable_compilation_cache is (not off)
  assert ("persistent compilation cache off" in caplog.text) is off


def test_no_cache_configured_is_left_alone(monkeypatch):
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  enabled = jax.config.jax_enable_compilation_cache
  monkeypatch.setattr(distributed, "_cache_dir", lambda: None)
  assert distributed.guard_compilation_cache() is False
  assert jax.config.jax_enable_compilation_cache is enabled
