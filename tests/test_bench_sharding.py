"""Vocabulary sharding over the `model` mesh axis: on 8 fake CPU devices, the per-device bytes
of the item table fall as the axis grows 1 -> 2 -> 4 -> 8 (python -m dpr_jax.bench scale
--shard-demo measures the same with the trainer's compiled step at 1M items)."""

import json
import os
import subprocess
import sys

from conftest import ROOT


def test_item_table_bytes_per_device_fall_with_model_axis():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "dpr_jax.bench", "scale", "--child", "shard",
                        "--items", "5000", "--d", "16", "--len", "8", "--no-compile",
                        "--model-axes", "1", "2", "4", "8"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  rows = [json.loads(line[len("RESULT "):]) for line in out.stdout.splitlines()
          if line.startswith("RESULT ")]
  assert [r["mesh"] for r in rows] == ["8x1", "4x2", "2x4", "1x8"]
  full = rows[0]["table_mib"]
  assert rows[0]["V"] % 8 == 0 and full == rows[0]["V"] * 16 * 4 / 2**20
  per_device = [r["table_mib_per_device"] for r in rows]
  assert per_device == sorted(per_device, reverse=True) and len(set(per_device)) == 4
  for r in rows:
    assert r["table_spec"][0] == "model" and r["table_devices"] == 8
    # Split, not replicated: each device holds exactly 1/m of the rows.
    assert r["table_rows_per_device"] * r["model_axis"] == r["V"]
    assert r["table_mib_per_device"] * r["model_axis"] == full


def test_every_device_does_its_share_of_the_stage1_step():
  """Data parallelism in the compiled programs (XLA's FLOP count per device, not a timing): on
  (8, 1) each device runs ~1/8 of the one-device step for the dense and the packed paths of both
  backbones, and a packed step's all-gathers stay below the parameters' size (no batch
  gathered)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "dpr_jax.bench", "shard", "--child", "--batch", "64",
                        "--len", "50", "--d", "16", "--items", "300", "--out", "none",
                        "--programs", "stage 1", "--meshes", "8x1"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  rows = {(r["program"], r["mesh"]): r for r in
          (json.loads(line[len("RESULT "):]) for line in out.stdout.splitlines()
           if line.startswith("RESULT "))}
  for model in ("sasrec", "gru4rec"):
    for path in ("dense", "packed"):
      r = rows[(f"stage 1 {model} {path}", "8x1")]
      assert r["ratio_same_program"] >= 0.9 * 8, r
      assert r["allgather_mib"] <= r["param_mib"], r
      assert r["groups"] == (8 if path == "packed" else 1)
  packed = rows[("stage 1 sasrec packed", "8x1")]
  assert packed["ratio"] >= 0.75 * 8, packed  # the per-shard layout pads little


def test_collective_bytes_reads_tuple_shapes():
  from dpr_jax.bench.shard import collective_bytes

  hlo = ("%a = f32[256,64]{1,0} all-gather(f32[32,64]{1,0} %x), dimensions={0}\n"
         "%b = (f32[64]{0}, f32[2,3]{1,0}, /*index=2*/s32[4]{0}) all-reduce(%p, %q, %r), "
         "to_apply=%sum\n"
         "%c = f32[8]{0} all-reduce-start(f32[8]{0} %y), to_apply=%sum\n"
         "%d = f32[4]{0} collective-permute(f32[4]{0} %z)\n")
  got = collective_bytes(hlo)
  assert got["all-gather"] * 2**20 == 256 * 64 * 4
  assert got["all-reduce"] * 2**20 == (64 + 6 + 4) * 4 + 8 * 4
  assert got["other"] * 2**20 == 16


def test_every_device_does_its_share_of_the_evaluations():
  """Full-ranking evaluation and the steering evaluation of DPR split their users over `data`:
  on (8, 1) each device runs ~1/8 of the one-device program and gathers no batch (the seen-items
  mask is scattered where each shard lies)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "dpr_jax.bench", "shard", "--child", "--batch", "64",
                        "--len", "50", "--d", "16", "--items", "300", "--out", "none",
                        "--programs", "evaluation", "--meshes", "8x1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  rows = {(r["program"], r["mesh"]): r for r in
          (json.loads(line[len("RESULT "):]) for line in out.stdout.splitlines()
           if line.startswith("RESULT "))}
  for program in ("evaluation sasrec", "evaluation gru4rec", "steering evaluation (DPR)"):
    r = rows[(program, "8x1")]
    assert r["ratio"] >= 0.9 * 8, r
    assert r["allgather_mib"] <= r["param_mib"], r
