"""Run as a script under XLA_FLAGS=--xla_force_host_platform_device_count=8 (see test_sharding).

Trains a tiny SASRec for one jit call (3 steps) on a 1-device mesh and on a (data, model) mesh
from the same seed and batches; prints a JSON verdict the test asserts on.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import sharding
from dpr_jax.bench.common import synthetic_split
from dpr_jax.data import pipeline
from dpr_jax.eval.ranking import backbone_evaluator
from dpr_jax.models import build_backbone
from dpr_jax.models.dpr import DPRHead
from dpr_jax.train import packing
from dpr_jax.train.step import create_state, jit_train_step, make_optimizer, make_train_step

sys.path.insert(0, "configs")
import tiny  # noqa: E402


def run(mesh, config, batch, capacity=None, groups=1):
  model = build_backbone(config.model, num_items=50, max_len=config.data.max_len)
  tx = make_optimizer(config.train)
  state, shardings = create_state(model, tx, mesh, seed=0, max_len=config.data.max_len)
  step = jit_train_step(make_train_step(model, tx, 50, seed=0, head_capacity=capacity,
                                        groups=groups), mesh, shardings)
  state, metrics = step(state, pipeline.to_global(batch, mesh))
  return state, metrics, shardings


def packed_run(mesh, config, batch, groups):
  """The packed step with ``groups`` groups (the trainer's for a `data` axis of that size): the
  batch's columns dealt as the trainer's batch order deals them, the capacity from the host."""
  model = build_backbone(config.model, num_items=50, max_len=config.data.max_len)
  lengths = np.sum(batch["inputs"][0] > 0, axis=1)
  cols = pipeline.balance_groups(np.arange(len(lengths))[None], lengths, groups)[0]
  batch = {k: v[:, cols] for k, v in batch.items()}
  capacity = packing.host_positions(batch, packing.row_length_of(model, config.data.max_len),
                                    groups)
  capacity = -(-capacity // groups) * groups
  state, metrics, _ = run(mesh, config, batch, capacity, groups)
  return jax.device_get(state.params), np.asarray(metrics["loss"]).tolist()


def evaluate(mesh, config, state, shardings, data, chunk):
  """Ranking metrics of the trained backbone on ``mesh``, user vectors in chunks of ``chunk``."""
  config = config.copy_and_resolve_references()
  config.eval.chunk = chunk
  model = build_backbone(config.model, num_items=50, max_len=config.data.max_len)
  return backbone_evaluator(model, config, mesh, shardings.params, 50)(state.params, data, "test")


def main(model_name: str, meshes: list[tuple[int, int]]):
  """One JSON line per (data, model) mesh, all against the same 1-device run."""
  config = tiny.get_config(model_name)
  rng = np.random.default_rng(0)
  inputs = rng.integers(0, 51, size=(3, 16, config.data.max_len)).astype(np.int32)
  targets = np.where(inputs > 0, rng.integers(1, 51, size=inputs.shape), 0).astype(np.int32)
  batch = {"inputs": inputs, "targets": targets}
  one = sharding.make_mesh(1, 1, devices=jax.devices()[:1])
  s1, m1, sh1 = run(one, config, batch)
  p1 = jax.device_get(s1.params)
  eval_data = synthetic_split(40, 50, config.data.max_len)
  e1 = evaluate(one, config, s1, sh1, eval_data, chunk=0)
  head = DPRHead(embed_dim=config.model.embed_dim, num_tags=3, num_experts=4)
  boxed_head = jax.eval_shape(lambda: head.init(
      {"params": jax.random.key(0)}, jnp.zeros((1, config.model.embed_dim)), jnp.zeros((1, 5)),
      jnp.ones((1,), bool)))["params"]
  for data_axis, model_axis in meshes:
    many = sharding.make_mesh(data_axis, model_axis)
    s8, m8, sh8 = run(many, config, batch)
    p8 = jax.device_get(s8.params)
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), p1, p8))
    table = s8.params["item_embed"]["embedding"]
    # Ranking on this mesh with the user vectors in chunks of 16 users (16 / data per device)
    # against one device without chunks (the parameters agree to ~1e-6, see max_param_diff).
    e8 = evaluate(many, config, s8, sh8, eval_data, chunk=16)
    # The DPR head's experts: their leading `expert` axis is split over `model`.
    expert_spec = sharding.tree_shardings(many, boxed_head)["experts"]["w1"].spec
    # The packed step (each `data` shard packs its own sequences) on the mesh and, with the
    # same groups, on one device.
    pp1, pl1 = packed_run(one, config, batch, groups=data_axis)
    ppn, pln = packed_run(many, config, batch, groups=data_axis)
    packed_diff = max(jax.tree.leaves(jax.tree.map(
        lambda a, b: float(np.max(np.abs(a - b))), pp1, ppn)))
    print(json.dumps({
        "mesh": [data_axis, model_axis], "devices": len(jax.devices()),
        "loss_1": np.asarray(m1["loss"]).tolist(), "loss_n": np.asarray(m8["loss"]).tolist(),
        "max_param_diff": max(diffs),
        "eval_users": [e1["users"], e8["users"]],
        "eval_max_diff": max(abs(e1[k] - e8[k]) for k in e1 if k != "users"),
        "table_spec": [str(a) for a in table.sharding.spec],
        "table_shard_rows": table.addressable_shards[0].data.shape[0],
        "table_rows": table.shape[0],
        "expert_spec": [str(a) for a in expert_spec],
        "packed_loss_1": pl1, "packed_loss_n": pln, "packed_max_param_diff": packed_diff,
    }))


if __name__ == "__main__":
  main(sys.argv[1], [tuple(int(a) for a in m.split("x")) for m in sys.argv[2:]])
