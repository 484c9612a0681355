"""Scale-out on fake devices: per-device FLOPs and collective bytes of the compiled programs.

    python -m dpr_jax.bench shard [--devices 8] [--batch 128 --len 200 --d 64 --items 3416]

A CPU-only machine cannot time N accelerators, but it can compile the program each of N devices
would run. One subprocess gets ``--devices`` fake CPU devices
(``--xla_force_host_platform_device_count``); for every program and mesh the program is compiled
(not run) and XLA's own accounting of it is read:

* ``gflop_per_device``: ``cost_analysis()['flops']`` of the per-device program;
* ``ratio``: that of one device over that of one device of the mesh (ideal: the number of devices
  along which the work is split, N for a (N, 1) mesh);
* ``allgather_mib`` / ``allreduce_mib`` / ``other_collective_mib``: bytes produced by the
  all-gather, all-reduce and other collectives (reduce-scatter, all-to-all, collective-permute)
  of the compiled HLO, per device;
* ``param_mib``: the parameters' size, the yardstick for a data-parallel step's collectives.

Programs: the stage-3 step (the DPR head's steering loss and update; examples over ``data``, the
frozen catalogue split over ``model``), the stage-1 training step of SASRec and GRU4Rec, dense
(every position) and packed (``train.compact_head``: SASRec's row packing, GRU4Rec's compact head;
each ``data`` shard packs its own sequences, ``groups`` = the mesh's ``data`` size), full-ranking
evaluation (user vectors of ``--batch`` users against the whole catalogue, top-k), and the steering
evaluation of DPR (512 prompted users' vectors steered by the head and ranked,
``eval.steering.Scorer.step``; users over ``data``; the backbone's user vectors are computed once
per user beforehand, ``Scorer.user_table``, the full-ranking evaluation's forward). A packed program
is measured twice on one device: with one group (what a one-device run compiles) and with the mesh's
groups (the same program as on the mesh); ``ratio`` is against the former, ``ratio_same_program``
against the latter. Batches: synthetic sequences with ML-1M's length distribution
(:func:`ml1m_like_batch`), their columns dealt to the shards as the trainer's batch order does
(``data.pipeline.balance_groups``).

Caveat (``common.cost_flops``): XLA counts a ``lax.scan`` body once, so GRU4Rec's recurrence is
counted for one time step; the ratio is unaffected (every time step is split alike).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np

from dpr_jax.bench import common

COLUMNS = ("program", "mesh", "groups", "capacity", "gflop_per_device", "ratio",
           "ratio_same_program", "allgather_mib", "allreduce_mib", "other_collective_mib",
           "param_mib")
_DTYPE_BYTES = {"f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2, "pred": 1, "s8": 1, "u8": 1,
                "f64": 8, "s64": 8, "u64": 8}
_COLLECTIVE = re.compile(
    r"=\s*(?P<shape>\(.*?\)|[a-z0-9]+\[[0-9,]*\](?:\{[^}]*\})?)\s+"
    r"(?P<op>all-gather|all-reduce|reduce-scatter|all-to-all|collective-permute)(?:-start)?\(")
_ARRAY = re.compile(r"([a-z0-9]+)\[([0-9,]*)\]")


def collective_bytes(hlo_text: str) -> dict[str, float]:
  """MiB produced per collective kind in an HLO module's text (``compiled.as_text()``)."""
  out = {"all-gather": 0.0, "all-reduce": 0.0, "other": 0.0}
  for m in _COLLECTIVE.finditer(hlo_text):
    size = 0
    for dtype, dims in _ARRAY.findall(m.group("shape")):
      n = int(np.prod([int(x) for x in dims.split(",") if x])) if dims else 1
      size += n * _DTYPE_BYTES.get(dtype, 4)
    kind = m.group("op") if m.group("op") in ("all-gather", "all-reduce") else "other"
    out[kind] += size / 2**20
  return out


def ml1m_like_batch(batch: int, length: int, num_items: int, seed: int = 0):
  """(inputs, targets) int32[1, B, L]: left-padded training sequences whose lengths follow
  ML-1M's (lognormal, median ~96 interactions, >= 20; two held out; capped at L)."""
  rng = np.random.default_rng(seed)
  n = np.clip(np.exp(rng.normal(np.log(96), 1.04, batch)), 20, 2314).astype(int) - 2
  n = np.minimum(n, length)
  seq = rng.integers(1, num_items + 1, size=(batch, length + 1)).astype(np.int32)
  keep = np.arange(length)[None] >= (length - n[:, None])
  return (np.where(keep, seq[:, :-1], 0)[None].astype(np.int32),
          np.where(keep, seq[:, 1:], 0)[None].astype(np.int32))


# ============================================================================ one mesh (child)
def _stage1(config, mesh, num_items: int, batch: dict, packed: bool, groups: int):
  """(compiled step, capacity, param MiB) of the trainer's stage-1 step on ``mesh``."""
  import jax

  from dpr_jax.data import pipeline
  from dpr_jax.models import build_backbone
  from dpr_jax.train import packing
  from dpr_jax.train.step import create_state, jit_train_step, make_optimizer, make_train_step

  length = batch["inputs"].shape[-1]
  model = build_backbone(config.model, num_items, length)
  tx = make_optimizer(config.train, steps_per_epoch=1)  # timing: a schedule's values do not matter
  state, shardings = create_state(model, tx, mesh, 0, length)
  capacity = None
  if packed and groups > 1:  # the trainer's batch order deals the columns to the shards
    lengths = np.sum(batch["inputs"][0] > 0, axis=1)
    cols = pipeline.balance_groups(np.arange(len(lengths))[None], lengths, groups)[0]
    batch = {k: v[:, cols] for k, v in batch.items()}
  if packed:
    capacity = packing.host_positions(batch, packing.row_length_of(model, length), groups)
    if packing.row_length_of(model, length) is None:  # GRU4Rec's head: a multiple of groups
      capacity = -(-capacity // groups) * groups
  step = jit_train_step(make_train_step(model, tx, num_items, 0, head_capacity=capacity,
                                        groups=groups), mesh, shardings)
  compiled = step.lower(state, pipeline.to_global(batch, mesh)).compile()
  params = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.params)) / 2**20
  return compiled, capacity, params


def _evaluation(config, mesh, num_items: int, data):
  """(compiled full-ranking step, param MiB): the first batch of ``config.eval.batch_size``
  users of ``data``'s test split -- user vectors, the whole catalogue scored, seen items masked,
  metrics -- as the trainer's evaluator runs it (``eval.chunk`` = 0: XLA would count a chunked
  ``lax.map`` body once)."""
  import jax
  import jax.numpy as jnp

  from dpr_jax import sharding
  from dpr_jax.eval import ranking
  from dpr_jax.models import build_backbone

  model = build_backbone(config.model, num_items, data.max_len)
  abstract = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)},
                                               jnp.zeros((1, data.max_len), jnp.int32)))
  shardings = sharding.tree_shardings(mesh, abstract["params"])
  params = jax.device_put(common.random_params(lambda: abstract["params"]), shardings)
  config = config.copy_and_resolve_references()
  config.eval.chunk = 0
  evaluator = ranking.backbone_evaluator(model, config, mesh, shardings, num_items)
  size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params)) / 2**20
  return evaluator.lower(params, data, "test").compile(), size


def _stage3(config, mesh, num_items: int, batch: int):
  """(compiled stage-3 step, param MiB): the steering loss of a batch of examples (unprompted,
  positive, negative) and its AdamW update (``bench.train.stage3_setup``), jitted as
  ``train.steering.run_stage`` does: examples over ``data``, the frozen catalogue an argument
  split over ``model``, the head's experts over ``model``."""
  import jax
  import jax.numpy as jnp
  import optax

  from dpr_jax import sharding
  from dpr_jax.bench.train import stage3_calls, stage3_setup
  from dpr_jax.train.step import TrainState

  head, init, catalogue, host, _ = stage3_setup(config, num_items, batch)
  param_shardings = sharding.tree_shardings(mesh, jax.eval_shape(init))
  tx = optax.adamw(config.stage3.lr, weight_decay=0.0)
  params = jax.device_put(common.random_params(init), param_shardings)
  state_shardings = TrainState(sharding.replicated(mesh), param_shardings,
                               sharding.tree_shardings(mesh, jax.eval_shape(
                                   lambda: tx.init(init()))))
  state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  batch_spec = {k: sharding.batch_sharding(mesh, v.ndim, batch_axis=1) for k, v in host.items()}
  cat_shardings = catalogue.shardings(mesh)
  step = jax.jit(stage3_calls(head, tx, config.stage3, mesh),
                 in_shardings=(state_shardings, batch_spec, cat_shardings),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=(0,))
  dev = {k: jax.device_put(v, batch_spec[k]) for k, v in host.items()}
  compiled = step.lower(state, dev, jax.device_put(catalogue, cat_shardings)).compile()
  size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params)) / 2**20
  return compiled, size


def child(args) -> list[dict]:
  """Runs in the subprocess with the fake devices: one row per (program, mesh)."""
  import jax

  from dpr_jax import sharding

  n = len(jax.devices())
  meshes = [(1, 1)] + [m for m in ((n, 1), (n // 2, 2), (2, n // 2))
                       if not args.meshes or f"{m[0]}x{m[1]}" in args.meshes]
  inputs, targets = ml1m_like_batch(args.batch, args.len, args.items)
  batch = {"inputs": inputs, "targets": targets}
  eval_data = common.synthetic_split(2 * 256, args.items, args.len)
  rows = []
  wanted = lambda program: not args.programs or any(w in program for w in args.programs)

  def measure(program: str, build) -> None:
    """Rows of an unpacked ``program`` (``build(mesh) -> (compiled, param MiB)``) per mesh."""
    if not wanted(program):
      return
    base = None
    for data_axis, model_axis in meshes:
      mesh = sharding.make_mesh(data_axis, model_axis, devices=jax.devices()[:data_axis *
                                                                             model_axis])
      row = _row(program, (data_axis, model_axis), 1, None, *build(mesh))
      base = base or row["gflop_per_device"]
      row["ratio"] = row["ratio_same_program"] = base / row["gflop_per_device"]
      rows.append(row)
      print("RESULT " + json.dumps(row), flush=True)

  for name in ("sasrec", "gru4rec"):
    config = common.load_config(None, model__name=name, model__embed_dim=args.d)
    for packed in (False, True):
      program = f"stage 1 {name} {'packed' if packed else 'dense'}"
      if not wanted(program):
        continue
      base = {}
      for data_axis, model_axis in meshes:
        groups = data_axis if packed else 1
        mesh = sharding.make_mesh(data_axis, model_axis, devices=jax.devices()[:data_axis *
                                                                               model_axis])
        compiled, capacity, params = _stage1(config, mesh, args.items, batch, packed, groups)
        row = _row(program, (data_axis, model_axis), groups, capacity, compiled, params)
        if (data_axis, model_axis) == (1, 1):
          base[1] = row["gflop_per_device"]
        elif packed:  # the mesh's program on one device
          one = sharding.make_mesh(1, 1, devices=jax.devices()[:1])
          same, _, _ = _stage1(config, one, args.items, batch, packed, groups)
          base[groups] = common.cost_flops(same) / 1e9
        row["ratio"] = base[1] / row["gflop_per_device"]
        row["ratio_same_program"] = base.get(groups, base[1]) / row["gflop_per_device"]
        rows.append(row)
        print("RESULT " + json.dumps(row), flush=True)
    measure(f"evaluation {name}",
            lambda mesh: _evaluation(config, mesh, args.items, eval_data))
  dpr_config = common.load_config(None, model__embed_dim=args.d)
  measure("steering evaluation (DPR)",
          lambda mesh: _steering(dpr_config, mesh, args.items, eval_data))
  measure("stage 3 (DPR head)",
          lambda mesh: _stage3(dpr_config, mesh, args.items, args.stage3_batch))
  return rows


def _steering(config, mesh, num_items: int, data, batch: int = 512):
  """(compiled per-batch steering evaluation of DPR, param MiB): ``batch`` users of ``data``'s
  test split (their vectors random: ``Scorer.user_table`` computes them once per user), each with
  a prompt, steered by the head and ranked against the whole catalogue, seen items masked
  (``eval.steering.Scorer.step("dpr")``, users over ``data``)."""
  import jax
  import jax.numpy as jnp

  from dpr_jax import sharding
  from dpr_jax.bench.train import stage3_setup
  from dpr_jax.eval.steering import Scorer, head_steer
  from dpr_jax.models import build_backbone

  model = build_backbone(config.model, num_items, data.max_len)
  abstract = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)},
                                               jnp.zeros((1, data.max_len), jnp.int32)))
  backbone = jax.device_put(common.random_params(lambda: abstract["params"]),
                            sharding.tree_shardings(mesh, abstract["params"]))
  head, init, _, _, vocab = stage3_setup(config, num_items, 8)
  head_params = jax.device_put(common.random_params(init),
                               sharding.tree_shardings(mesh, jax.eval_shape(init)))
  num_tags, prompt_dim = common.ML1M_TAGS, common.PROMPT_DIM
  rng = np.random.default_rng(0)
  tags = np.zeros((vocab, num_tags), bool)
  tags[1:num_items + 1] = rng.random((num_items, num_tags)) < 0.15

  scorer = Scorer(
      user_vectors=lambda x: model.apply({"params": backbone}, x, method=model.user_vector),
      steer=head_steer(head, head_params),
      table=model.apply({"params": backbone}, method=model.item_table),
      item_text=jnp.zeros((vocab, prompt_dim - 1)), item_tags=jnp.asarray(tags),
      num_items=num_items, mesh=mesh)
  _, targets, seen_len = data.eval_split("test")
  users = np.arange(batch) % data.num_users
  host = {"user": rng.standard_normal((batch, config.model.embed_dim)).astype(np.float32),
          "targets": targets[users], "history": data.history[users],
          "seen_len": seen_len[users], "tag": rng.integers(0, num_tags, batch).astype(np.int32),
          "polarity": np.ones(batch, np.int32), "alpha": np.ones(batch, np.float32),
          "positive_scale": np.ones(batch, np.float32),
          "negative_scale": np.ones(batch, np.float32),
          "has_prompt": np.ones(batch, bool),
          "prompt": rng.standard_normal((batch, prompt_dim)).astype(np.float32),
          "has_prompt2": np.zeros(batch, bool),
          "prompt2": np.zeros((batch, prompt_dim), np.float32),
          "prompt_negative": np.zeros(batch, bool), "prompt2_negative": np.zeros(batch, bool),
          "tag2": np.zeros(batch, np.int32),
          "share": rng.dirichlet(np.ones(num_tags), batch).astype(np.float32)}
  size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves((backbone, head_params))) / 2**20
  return scorer.step("dpr").lower(host).compile(), size


def _row(program, mesh, groups, capacity, compiled, params) -> dict:
  coll = collective_bytes(compiled.as_text())
  return {"program": program, "mesh": f"{mesh[0]}x{mesh[1]}", "groups": groups,
          "capacity": capacity, "gflop_per_device": common.cost_flops(compiled) / 1e9,
          "allgather_mib": coll["all-gather"], "allreduce_mib": coll["all-reduce"],
          "other_collective_mib": coll["other"], "param_mib": params}


# ================================================================================ entry point
def main(argv=None) -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench shard", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  positive = common.int_at_least(1)
  p.add_argument("--devices", type=common.int_at_least(4), default=8,
                 help="fake CPU devices (even)")
  p.add_argument("--batch", type=positive, default=128)
  p.add_argument("--len", type=positive, default=200)
  p.add_argument("--d", type=positive, default=64)
  p.add_argument("--items", type=positive, default=common.ML1M_ITEMS)
  p.add_argument("--stage3-batch", type=positive, default=512, help="stage-3 examples per step")
  p.add_argument("--programs", nargs="+", default=None,
                 help="only the programs whose name contains one of these (e.g. 'sasrec packed')")
  p.add_argument("--meshes", nargs="+", default=None,
                 help="only these meshes besides 1x1, as DATAxMODEL (default: 8x1 4x2 2x4)")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  common.add_common_args(p)
  a = p.parse_args(argv)
  if a.child:
    child(a)
    return
  env = common.fake_devices_env(a.devices)
  cmd = [sys.executable, "-m", "dpr_jax.bench", "shard", "--child", "--batch", str(a.batch),
         "--len", str(a.len), "--d", str(a.d), "--items", str(a.items), "--out", "none",
         "--stage3-batch", str(a.stage3_batch),
         *(["--programs", *a.programs] if a.programs else []),
         *(["--meshes", *a.meshes] if a.meshes else [])]
  out = subprocess.run(cmd, cwd=common.ROOT, env=env, capture_output=True, text=True,
                       timeout=3600)
  if out.returncode != 0:
    raise RuntimeError(f"shard child failed ({out.returncode}):\n{out.stderr[-3000:]}")
  rows = [json.loads(line[len("RESULT "):]) for line in out.stdout.splitlines()
          if line.startswith("RESULT ")]
  record = common.make_record("shard", rows, {
      "devices": a.devices, "B": a.batch, "L": a.len, "d": a.d, "items": a.items}, notes=[
      f"{a.devices} fake CPU devices in one subprocess; meshes data x model; every program "
      "compiled, not run (module docstring of dpr_jax/bench/shard.py).",
      "ratio: GFLOP of the one-device program (a packed one with one group, as a one-device run "
      "compiles) over GFLOP per device on the mesh; ratio_same_program: against the mesh's own "
      "program compiled for one device.",
      "Collective MiB: bytes produced by the compiled HLO's collectives, per device; a "
      "data-parallel step's all-reduce is its gradient (~param_mib)."])
  common.write_record(record, a.out, a.tag, COLUMNS)


if __name__ == "__main__":
  main()
