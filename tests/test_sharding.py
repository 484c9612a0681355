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
    ("sasrec", [(8, 1), (4, 2), (2, 4)]), ("gru4rec", [(4, 2)])])
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
