"""Joining a multi-process JAX run (several hosts, or several processes on one machine)."""

from __future__ import annotations

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
    return
  if not 0 <= dist_config.process_id < dist_config.num_processes:
    raise ConfigError(f"config.distributed.process_id={dist_config.process_id} must be in"
                      f" [0, num_processes={dist_config.num_processes})")
  jax.distributed.initialize(coordinator_address=dist_config.coordinator,
                             num_processes=dist_config.num_processes,
                             process_id=dist_config.process_id)


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
