"""Joining a multi-process JAX run (several hosts, or several processes on one machine)."""

from __future__ import annotations

import logging

import jax
from jax.experimental import multihost_utils

from dpr_jax.errors import ConfigError


def initialize(dist_config) -> None:
  """Calls ``jax.distributed.initialize`` as ``config.distributed`` says (no-op by default).

  Must run before anything touches a JAX device. On CPU the cross-process collectives use gloo.
  """
  if not (dist_config.coordinator or dist_config.auto):
    return
  try:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except (AttributeError, ValueError):  # option renamed or absent: the platform default applies
    pass
  if dist_config.auto:
    jax.distributed.initialize()
  else:
    if not 0 <= dist_config.process_id < dist_config.num_processes:
      raise ConfigError(f"config.distributed.process_id={dist_config.process_id} must be in"
                        f" [0, num_processes={dist_config.num_processes})")
    jax.distributed.initialize(coordinator_address=dist_config.coordinator,
                               num_processes=dist_config.num_processes,
                               process_id=dist_config.process_id)
  guard_compilation_cache()


def guard_compilation_cache() -> bool:
  """Turns JAX's persistent compilation cache off in a multi-process CPU run; True if it did.

  In a CPU run of several processes only process 0, the cache's only writer, finds its programs
  there on a rerun (``--mode eval``, a resume): the others' cache keys differ (the key's
  ``accelerator_config`` part), so they compile theirs afresh. With jax 0.12.1 a program with
  two cross-process collectives, loaded in one process and compiled in the other, never
  completes: the rerun of a two-process stage-1 run hangs in its first evaluation (jax 0.10.2,
  0.11.2 and 0.12.0.1 run it; docs/usage.md, reports/jax_cache_multiprocess_2026-12-06/). Must
  run before the first compilation.
  """
  if jax.process_count() == 1 or jax.default_backend() != "cpu":
    return False
  if not (jax.config.jax_enable_compilation_cache and _cache_dir()):
    return False
  jax.config.update("jax_enable_compilation_cache", False)
  logging.warning("persistent compilation cache off (%s) in this multi-process CPU run: with"
                  " it, processes can load different programs and hang in their first"
                  " collective (docs/usage.md)", _cache_dir())
  return True


def _cache_dir() -> str | None:
  """The persistent compilation cache's folder (None: no cache)."""
  return jax.config.jax_compilation_cache_dir


def first_process_then_others(name: str, fn):
  """Runs ``fn`` on process 0, then on the others (e.g. build a cache once, then read it)."""
  if jax.process_count() == 1:
    return fn()
  result = fn() if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices(name)
  return result if jax.process_index() == 0 else fn()


def agreed_seconds(seconds: float) -> float:
  """Process 0's value of a local clock reading, on every process, so that a decision taken on
  it (stop once a time budget is spent) is the same everywhere."""
  if jax.process_count() == 1:
    return seconds
  import numpy as np  # pylint: disable=import-outside-toplevel
  return float(multihost_utils.broadcast_one_to_all(np.asarray(seconds, np.float64)))
