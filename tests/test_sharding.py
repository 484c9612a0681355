"""The sharded training step on 8 fake CPU devices equals the 1-device step (dense and packed)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def _run(model, meshes):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, str(ROOT / "tests" / "sharded_step_check.py"), model,
                        *(f"{d}x{m}" for d, m in meshes)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("model, meshes", [
    ("sasrec", [(8, 1), (2, 4)]), ("gru4rec", [(4, 2)])])
def test_sharded_step_matches_one_device(model, meshes):
  results = _run(model, meshes)
  assert [tuple(r["mesh"]) for r in results] == meshes
  for r in results:
    model_axis = r["mesh"][1]
    assert r["devices"] == 8
    for a, b in zip(r["loss_1"], r["loss_n"]):
      assert abs(a - b) < 1e-5 * max(1.0, abs(a)), r["mesh"]
    assert r["max_param_diff"] < 1e-5, r["mesh"]
    # The packed step, each data shard packing its own sequences, equals one device too.
    for a, b in zip(r["packed_loss_1"], r["packed_loss_n"]):
      assert abs(a - b) < 1e-5 * max(1.0, abs(a)), r["mesh"]
    assert r["packed_max_param_diff"] < 1e-5, r["mesh"]
    # Chunked ranking over the mesh scores the same users the same way as one device.
    assert r["eval_users"] == [40, 40] and r["eval_max_diff"] < 1e-4, r["mesh"]
    # The item table's vocab axis and the experts are split over `model` as the rules say.
    assert r["table_spec"][0] == "model" and r["expert_spec"][0] == "model"
    assert r["table_shard_rows"] * model_axis == r["table_rows"]


def test_bad_mesh_is_refused():
  from dpr_jax import sharding
  from dpr_jax.errors import ConfigError

  with pytest.raises(ConfigError, match="does not divide"):
    sharding.make_mesh(-1, 3, devices=[object()] * 8)
  with pytest.raises(ConfigError, match="devices, but 8 are available"):
    sharding.make_mesh(3, 2, devices=[object()] * 8)


def test_dpr_precompute_and_steering_evaluation_on_a_mesh_match_one_device():
  """Stage 3's user-vector precompute, the backbone's top-10 and every steering method run with
  their users split over `data` (and the item table over `model`) and agree with one device."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, str(ROOT / "tests" / "sharded_dpr_check.py"), "4x2", "8x1"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  results = [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith("{")]
  assert [r["mesh"] for r in results] == [[4, 2], [8, 1]]
  for r in results:
    assert r["devices"] == 8 and r["user_vectors_shape"] == [37, 20, 32]
    assert r["user_vectors_max_diff"] < 1e-5, r
    assert r["top10_equal"], r
    for method, m in r["methods"].items():
      assert m["users"] == 30 and m["ndcg_max_diff"] < 1e-6, (method, r["mesh"])
      assert m["share_equal"] and m["top10_equal"], (method, r["mesh"])
