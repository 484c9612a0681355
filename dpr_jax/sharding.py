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


def activation_mesh() -> Mesh | None:
  """The mesh of the enclosing :func:`activation_rules`, or None outside one."""
  return _ACTIVATION_MESH.get()


def constrain(x: jax.Array, logical_axes: tuple[str | None, ...]) -> jax.Array:
  """``x`` laid out as its logical axes say (one name or None per axis) inside
  :func:`activation_rules`; unchanged outside it."""
  mesh = _ACTIVATION_MESH.get()
  if mesh is None:
    return x
  return jax.lax.with_sharding_constraint(x, logical_sharding(mesh, logical_axes))


def rowwise(fn, *xs):
  """``fn(*xs)`` for a row-wise ``fn`` (output row i depends on input row i only), computed where
  each ``data`` shard of the rows lies.

  Inside :func:`activation_rules` it is a ``shard_map`` over ``data`` (each device gets its rows
  with their other axes whole: gathered over ``model`` if split there); elsewhere, or when the
  rows do not divide evenly, ``fn`` itself. For ops XLA's partitioner does not split over the
  batch: ``lax.top_k`` on a row-sharded array all-gathers every row to every device.
  """
  mesh = _ACTIVATION_MESH.get()
  if mesh is None or mesh.shape["data"] == 1 or any(x.shape[0] % mesh.shape["data"] for x in xs):
    return fn(*xs)
  rows = lambda tree: jax.tree.map(lambda a: P("data", *([None] * (a.ndim - 1))), tree)  # noqa
  return jax.shard_map(fn, mesh=mesh, in_specs=rows(xs), out_specs=rows(jax.eval_shape(fn, *xs)),
                       check_vma=False)(*xs)


def top_k(x: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """``lax.top_k`` over the last axis of float[B, N], each ``data`` shard of rows on its own
  devices (:func:`rowwise`): (values float[B, k], indices int32[B, k])."""
  return rowwise(lambda y: jax.lax.top_k(y, k), x)


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


def global_rows(value: np.ndarray, mesh: Mesh) -> jax.Array:
  """A host array every process holds in full -> a global array, rows split over ``data``."""
  value = np.asarray(value)
  where = batch_sharding(mesh, value.ndim)
  return jax.make_array_from_callback(value.shape, where, lambda index: value[index])


def to_host(x: jax.Array) -> np.ndarray:
  """The whole of a global array on every process (an all-gather only across processes)."""
  if x.is_fully_addressable:
    return np.asarray(x)
  from jax.experimental import multihost_utils

  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


class RowParallel:
  """A jitted function of row-aligned host arrays, run with its rows split over ``data``.

  ``fn(*args) -> pytree`` takes pytrees of arrays and must treat rows independently (row i of
  every output depends on row i of the inputs). Each call takes host arrays whose leading axis
  is a multiple of the ``data`` size (every process passes the same values), lays them out over
  ``data``, runs the compiled program -- each device computes its share of the rows; what
  ``fn`` closes over (parameters, the catalogue) keeps its own layout -- and returns the
  outputs as host arrays.
  """

  def __init__(self, fn, mesh: Mesh):
    self.mesh = mesh

    def under_rules(*args):
      with activation_rules(mesh):
        return fn(*args)

    self._fn = jax.jit(under_rules)

  def __call__(self, *args):
    rows = {len(a) for a in jax.tree.leaves(args)}
    if len(rows) != 1 or next(iter(rows)) % self.mesh.shape["data"]:
      raise ValueError(f"row counts {sorted(rows)} must agree and be a multiple of the data"
                       f" axis ({self.mesh.shape['data']})")
    inputs = jax.tree.map(lambda a: global_rows(a, self.mesh), args)
    return jax.tree.map(to_host, self._fn(*inputs))

  def lower(self, *args):
    """The lowered program for host ``args`` (compiled-program measurements)."""
    return self._fn.lower(*jax.tree.map(lambda a: global_rows(a, self.mesh), args))
