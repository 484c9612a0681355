"""Catalogue scaling: SASRec training step time and peak memory at 3.4k, 100k and 1M items;
per-device item-table memory with the vocabulary sharded over the ``model`` mesh axis.

  python -m dpr_jax.bench scale [--items 3416 100000 1000000] [--steps 2] [--batch 128]
                                [--len 200] [--d 64]
  python -m dpr_jax.bench scale --shard-demo [--items 1000000] [--model-axes 1 2 4 8]

Each catalogue size runs in a fresh subprocess, so its peak resident memory (``VmHWM`` of
/proc/self/status, else ``ru_maxrss``) is that case's alone: the real trainer step
(``dpr_jax.train.step``, AdamW, full-catalogue cross-entropy -- tiled over the vocabulary
above 2**28 logits) on full-length synthetic sequences, compile time apart, then ``--steps``
timed steps (no separate warm-up: compilation is done before the first call). Reported beside
it: the compiled memory (``memory_analysis()``) and the size the dense [B, L, V] float32
logits alone would have.

``--shard-demo`` runs one subprocess on 8 fake CPU devices
(``--xla_force_host_platform_device_count=8``) and, for each model-axis size m, builds the
sharded train state on a (8/m, m) mesh and compiles (does not run) the train step: per-device
item-table bytes and the compiled per-device argument / temporary memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from dpr_jax.bench import common

COLUMNS = ("items", "V", "B", "L", "d", "loss", "compile_s", "step_p50_ms", "seq_per_s",
           "peak_rss_mib", "device_peak_mib", "compiled_peak_mib", "temp_mib", "dense_logits_gib")
SHARD_COLUMNS = ("mesh", "V", "table_mib", "table_mib_per_device", "table_rows_per_device",
                 "args_mib_per_device", "temp_mib_per_device", "compiled_peak_mib_per_device")


def _run_child(args: list[str], devices: int | None = None, timeout: float = 3600) -> list[dict]:
  """Runs ``python -m dpr_jax.bench scale <args>`` and returns its JSON lines."""
  out = subprocess.run([sys.executable, "-m", "dpr_jax.bench", "scale", *args],
                       cwd=common.ROOT, env=common.fake_devices_env(devices), capture_output=True, text=True,
                       timeout=timeout)
  if out.returncode != 0:
    raise RuntimeError(f"scale child {args} failed ({out.returncode}):\n{out.stderr[-3000:]}")
  return [json.loads(line[len("RESULT "):]) for line in out.stdout.splitlines()
          if line.startswith("RESULT ")]


# ================================================================================ one case
def one_case(num_items: int, batch: int, length: int, d: int, steps: int, config_spec) -> dict:
  """Runs in the child process: one catalogue size, returns its row."""
  import numpy as np

  from dpr_jax.bench.train import _timed_steps, backbone_step
  from dpr_jax.models import padded_vocab
  from dpr_jax.train import loss as loss_lib

  config = common.load_config(config_spec, model__embed_dim=d, data__max_len=length,
                              train__batch_size=batch)
  config.model.name = "sasrec"
  compiled, state, dev_batch, compile_s = backbone_step(config, num_items, batch, length)
  times, _ = _timed_steps(compiled, state, dev_batch, steps, warmup=0)
  vocab = padded_vocab(num_items, config.model.vocab_multiple)
  mem = common.memory_stats(compiled) or {}
  tiled = batch * length * vocab > loss_lib.TILED_CE_THRESHOLD
  p50 = float(np.median(times))
  return {"items": num_items, "V": vocab, "B": batch, "L": length, "d": d,
          "loss": f"tiled/{loss_lib.DEFAULT_TILE_SIZE}" if tiled else "dense",
          "compile_s": compile_s, "step_p50_ms": p50 * 1e3,
          "step_ms": [t * 1e3 for t in times], "seq_per_s": batch / p50,
          "peak_rss_mib": common.peak_rss_mib(), "device_peak_mib": common.device_peak_mib(),
          "compiled_peak_mib": mem.get("peak_mib"),
          "temp_mib": mem.get("temp_mib"),
          "dense_logits_gib": batch * length * vocab * 4 / 2**30}


def shard_demo(num_items: int, model_axes: list[int], batch: int, length: int, d: int,
               compile_step: bool = True) -> list[dict]:
  """Runs in the child process (several devices): per-device table and step memory per mesh.

  With ``compile_step`` the trainer's own state is built (``create_state``) and its train step
  compiled; without, only the item table is placed with the sharding the same rules give the
  trainer's parameters (no compilation: fast enough for a test).
  """
  import jax
  import jax.numpy as jnp
  import numpy as np

  from dpr_jax import sharding
  from dpr_jax.models import build_backbone
  from dpr_jax.train.step import create_state, jit_train_step, make_optimizer, make_train_step

  n = jax.device_count()
  rows = []
  for m in model_axes:
    config = common.load_config(None, model__embed_dim=d, data__max_len=length)
    mesh = sharding.make_mesh(n // m, m)
    model = build_backbone(config.model, num_items, length)
    if compile_step:
      tx = make_optimizer(config.train, steps_per_epoch=1)  # timing: schedule values do not matter
      state, shardings = create_state(model, tx, mesh, 0, length)
      table = state.params["item_embed"]["embedding"]
    else:
      abstract = jax.eval_shape(lambda model=model: model.init(
          {"params": jax.random.key(0)}, jnp.zeros((1, length), jnp.int32))["params"])
      table_sharding = sharding.tree_shardings(mesh, abstract)["item_embed"]["embedding"]
      shape = nn_unbox_shape(abstract["item_embed"]["embedding"])
      table = jax.device_put(np.zeros(shape, np.float32), table_sharding)
    shard = table.addressable_shards[0].data
    row = {"mesh": f"{n // m}x{m}", "model_axis": m, "V": table.shape[0],
           "table_mib": table.nbytes / 2**20, "table_mib_per_device": shard.nbytes / 2**20,
           "table_rows_per_device": shard.shape[0],
           "table_devices": len({s.device for s in table.addressable_shards}),
           "table_spec": [str(a) for a in table.sharding.spec]}
    if compile_step:
      step = jit_train_step(make_train_step(model, tx, num_items, 0), mesh, shardings)
      spec = jax.ShapeDtypeStruct((1, batch, length), jnp.int32,
                                  sharding=sharding.batch_sharding(mesh, 3, batch_axis=1))
      compiled = step.lower(state, {"inputs": spec, "targets": spec}).compile()
      mem = common.memory_stats(compiled) or {}
      row |= {"args_mib_per_device": mem.get("args_mib"),
              "temp_mib_per_device": mem.get("temp_mib"),
              "compiled_peak_mib_per_device": mem.get("peak_mib")}
      del state
    rows.append(row)
  return rows


def nn_unbox_shape(leaf) -> tuple[int, ...]:
  """Shape of a (possibly logically boxed) abstract parameter."""
  return tuple(getattr(leaf, "value", leaf).shape)


# ================================================================================ CLI
def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench scale", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default=None, help="preset (model sizes other than d)")
  positive = common.positive_int  # counts and sizes: >= 1
  p.add_argument("--items", nargs="+", type=positive, default=None,
                 help="catalogue sizes (default 3416 100000 1000000; --shard-demo: 1000000)")
  p.add_argument("--batch", type=positive, default=128)
  p.add_argument("--len", type=positive, default=200)
  p.add_argument("--d", type=positive, default=64)
  p.add_argument("--steps", type=positive, default=2, help="timed steps per size")
  p.add_argument("--shard-demo", action="store_true")
  p.add_argument("--model-axes", nargs="+", type=positive, default=[1, 2, 4, 8])
  p.add_argument("--devices", type=positive, default=8, help="fake CPU devices of --shard-demo")
  p.add_argument("--no-compile", action="store_true",
                 help="--shard-demo: place the item table only (no train state, no compile)")
  p.add_argument("--child", choices=["case", "shard"], default=None, help=argparse.SUPPRESS)
  common.add_common_args(p)
  a = p.parse_args(argv)

  if a.child == "case":
    row = one_case(a.items[0], a.batch, a.len, a.d, a.steps, a.config)
    print("RESULT " + json.dumps(row), flush=True)
    return
  if a.child == "shard":
    for row in shard_demo(a.items[0], a.model_axes, a.batch, a.len, a.d, not a.no_compile):
      print("RESULT " + json.dumps(row), flush=True)
    return

  shape_args = ["--batch", str(a.batch), "--len", str(a.len), "--d", str(a.d)]
  if a.shard_demo:
    items = (a.items or [1_000_000])[0]
    rows = _run_child(["--child", "shard", "--items", str(items), "--model-axes",
                       *map(str, a.model_axes), *(["--no-compile"] if a.no_compile else []),
                       *shape_args], devices=a.devices)
    record = common.make_record("scale_shard", rows, {
        "items": items, "devices": a.devices, "B": a.batch, "L": a.len, "d": a.d}, notes=[
        f"{a.devices} fake CPU devices (--xla_force_host_platform_device_count) in one "
        "subprocess; mesh = data x model; the item table's vocab axis is split over `model` "
        "(dpr_jax/sharding.py rules).",
        "table_mib_per_device: bytes of one addressable shard of the item table; args/temp: "
        "memory_analysis() of the compiled (not run) train step, per device (params, Adam "
        "moments and batch / temporaries)."], cli_name="scale")
    common.write_record(record, a.out, a.tag or "", SHARD_COLUMNS)
    return

  rows = []

  def make():
    return common.make_record("scale", rows, {
        "config": a.config or "defaults", "model": "sasrec", "steps": a.steps}, notes=[
        "One subprocess per catalogue size; peak_rss_mib is that process's VmHWM (on CPU: "
        "everything, jax runtime, parameters, AdamW state, batch, the step's buffers); "
        "device_peak_mib: the accelerator's peak_bytes_in_use (none on CPU).",
        "loss: dense [B, L, V] cross-entropy below 2**28 logits, else the tiled custom-VJP loss "
        "(dpr_jax/train/loss.py); dense_logits_gib: what the dense logits alone would take.",
        "step_p50_ms: median of the timed steps (compiled beforehand, so the first call has no "
        "compilation); compiled_peak_mib: memory_analysis() args + out - donated + temp."])

  for items in a.items or [3416, 100_000, 1_000_000]:
    rows += _run_child(["--child", "case", "--items", str(items), "--steps", str(a.steps),
                        *shape_args, *(["--config", a.config] if a.config else [])])
    r = rows[-1]
    print({k: r[k] for k in ("items", "loss", "step_p50_ms", "peak_rss_mib")}, flush=True)
    common.write_record(make(), a.out, a.tag, COLUMNS, quiet=True)  # partial
  common.write_record(make(), a.out, a.tag, COLUMNS)


if __name__ == "__main__":
  main()
