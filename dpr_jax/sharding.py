"""Device mesh and the one table that maps logical axis names to mesh axes.

Parameters are created with logical axis names (``nn.with_logical_partitioning``); activations
are annotated with :func:`constrain`. :data:`LOGICAL_AXIS_RULES` says which mesh axis
each logical name is split over; a name mapped to ``None`` is replicated. Parameters get their
shardings from it through :func:`tree_shardings`; activations are annotated with
:func:`constrain` (logical names too), which takes effect inside :func:`activation_rules` -- every
jitted step enters it while it is traced -- and is the identity elsewhere (eager code, init).

The mesh has two axes:
  * ``data``:  the batch of users is split over it (data parallelism);
  * ``model``: the item table's vocab axis (and the MoE experts) are split over it.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dpr_jax.errors import ConfigError

LOGICAL_AXIS_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"),  # users in a batch
    ("vocab", "model"),  # rows of the item table
    ("embed", None),  # d, the retrieval space
    ("mlp", None),  # feed-forward hidden
    ("heads", None),
    ("kv", None),
    ("position", None),
    ("gru", None),
    ("expert", "model"),  # MoE experts (DPR layers)
    ("length", None),  # sequence positions of activations
    ("text", None),  # prompt-embedding width (frozen text encoder)
)


def make_mesh(data: int = -1, model: int = 1, devices: list | None = None) -> Mesh:
  """Builds a (data, model) mesh with classic (auto) axes.

  Args:
    data: size of the data axis; -1 takes every device not used by ``model``.
    model: size of the model axis.
    devices: defaults to ``jax.devices()`` (all processes).
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  if model < 1 or n % model:
    raise ConfigError(f"config.mesh.model={model} does not divide the {n} available devices")
  if data == -1:
    data = n // model
  if data * model != n:
    raise ConfigError(
        f"config.mesh: data={data} x model={model} = {data * model} devices, but {n} are"
        " available; set mesh.data=-1 to use them all")
  return Mesh(np.asarray(devices).reshape(data, model), ("data", "model"))


_ACTIVATION_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar(
    "activation_mesh", default=None)


@contextlib.contextmanager
def activation_rules(mesh: Mesh):
  """While tracing a jitted function: :func:`constrain` on activations becomes a sharding
  constraint over ``mesh`` per :data:`LOGICAL_AXIS_RULES` (entered inside ``jit``).

  (Explicit NamedSharding constraints rather than flax's ``nn.logical_axis_rules`` context, which
  also constrains every parameter as it is unboxed -- and trips over DenseGeneral's reshaped
  kernels.)
  """
  token = _ACTIVATION_MESH.set(mesh)
  try:
    yield
  finally:
    _ACTIVATION_MESH.reset(token)


def constrain(x: jax.Array, logical_axes: tuple[str | None, ...]) -> jax.Array:
  """``x`` laid out as its logical axes say (one name or None per axis) inside
  :func:`activation_rules`; unchanged outside it."""
  mesh = _ACTIVATION_MESH.get()
  if mesh is None:
    return x
  return jax.lax.with_sharding_constraint(x, logical_sharding(mesh, logical_axes))


def logical_sharding(mesh: Mesh, logical_spec: tuple[str | None, ...] | P) -> NamedSharding:
  """NamedSharding of one array given its logical axis names."""
  return NamedSharding(mesh, nn.logical_to_mesh_axes(tuple(logical_spec), LOGICAL_AXIS_RULES))


def tree_shardings(mesh: Mesh, abstract_tree: Any) -> Any:
  """Mesh shardings of a tree built with logically partitioned params (boxed or not).

  Leaves without logical names are replicated.
  """
  specs = nn.get_partition_spec(abstract_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, LOGICAL_AXIS_RULES)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, ndim: int, batch_axis: int = 0) -> NamedSharding:
  """Shards axis ``batch_axis`` of an ``ndim`` array over ``data``; the rest replicated."""
  spec = [None] * ndim
  spec[batch_axis] = "data"
  return NamedSharding(mesh, P(*spec))
