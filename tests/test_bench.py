"""The benchmark suite (dpr_jax/bench): records, FLOP counts, the serving function, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from dpr_jax.bench import common, flops


def test_record_writer_fields_and_table(tmp_path):
  rows = [{"model": "sasrec", "p50_ms": 12.5, "seq_per_s": 1024.0},
          {"model": "gru4rec", "p50_ms": 30.0, "extra": 3}]
  record = common.make_record("train", rows, {"steps": 3}, notes=["a note"],
                              argv=["--steps", "3"])
  path = common.write_record(record, str(tmp_path), tag="x", columns=("model", "p50_ms"))
  assert path == tmp_path / "train_x.json"
  saved = json.loads(path.read_text())
  assert saved["suite"] == "train" and saved["rows"] == rows and saved["params"] == {"steps": 3}
  assert saved["command"] == "python -m dpr_jax.bench train --steps 3"
  for key in ("date", "commit", "machine", "notes"):
    assert key in saved
  for key in ("device_kind", "backend", "jax", "cpu", "cpu_count", "load_1min", "python"):
    assert key in saved["machine"], key
  assert saved["machine"]["jax"] == jax.__version__
  md = (tmp_path / "train_x.md").read_text()
  lines = md.splitlines()
  header = lines.index("| model | p50_ms |")
  assert lines[header + 2:header + 4] == ["| sasrec | 12.5 |", "| gru4rec | 30.0 |"]
  assert "python -m dpr_jax.bench train --steps 3" in md and "- a note" in md
  assert common.write_record(record, "none") is None
  shard = common.make_record("scale_shard", [], {}, argv=["--shard-demo"], cli_name="scale")
  assert shard["command"] == "python -m dpr_jax.bench scale --shard-demo"


def test_timing_summary_and_percentiles():
  times = [0.001 * t for t in range(1, 101)]  # 1..100 ms
  s = common.summary(times)
  assert s["reps"] == 100 and s["min_ms"] == pytest.approx(1.0)
  assert s["p50_ms"] == pytest.approx(50.5) and s["p90_ms"] == pytest.approx(90.1)
  assert s["p99_ms"] == pytest.approx(99.01)
  assert common.floor_fraction(1e9, 0.5, 4e9) == pytest.approx(0.5)


def test_peak_tflops_by_device_kind_and_dtype():
  # SXM and PCIe parts of one card differ; the more specific name must win.
  assert common.peak_tflops("bfloat16", "NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
  assert common.peak_tflops("bfloat16", "NVIDIA H100 PCIe") == pytest.approx(756.0)
  assert common.peak_tflops("float32", "NVIDIA H200") == pytest.approx(494.7)  # TF32
  assert common.peak_tflops("bfloat16", "TPU v4 lite") is None  # not the v4 peak
  assert common.peak_tflops("float32", "AMD EPYC 7B13") is None
  assert common.peak_tflops("float32", "cpu") is None
  assert common.peak_tflops() == common.peak_tflops("float32", jax.devices()[0].device_kind)
  cols = common.peak_columns(2e12, 0.5, 8.0)  # 4 TFLOP/s against a peak of 8
  assert cols == {"tflops": pytest.approx(4.0), "peak_fraction": pytest.approx(0.5)}
  assert common.peak_columns(2e12, 0.5, None)["peak_fraction"] is None


def test_memory_stats_and_peak_rss():
  f = jax.jit(lambda x: jnp.sum(x @ x.T))
  stats = common.memory_stats(f.lower(jnp.zeros((1024, 64), jnp.float32)).compile())
  assert stats["args_mib"] == pytest.approx(0.25)  # 1024 x 64 float32
  assert stats["peak_mib"] >= stats["args_mib"] + stats["temp_mib"]
  before = common.peak_rss_mib()
  # A touched block larger than the whole peak so far: the new peak must exceed the old one.
  block = np.ones(int((before + 100) * 2**20) // 8)
  assert common.peak_rss_mib() >= before + 90
  del block


def test_synthetic_sequences_are_next_item_batches():
  rng = np.random.default_rng(0)
  inputs, targets = common.synthetic_sequences(rng, (2, 5, 12), num_items=30, min_len=3)
  assert inputs.shape == targets.shape == (2, 5, 12) and inputs.dtype == np.int32
  lens = (inputs > 0).sum(-1)
  assert lens.min() >= 3 and lens.max() <= 12
  assert np.array_equal(inputs > 0, targets > 0)
  for seq_in, seq_t, n in zip(inputs.reshape(10, 12), targets.reshape(10, 12), lens.reshape(-1)):
    assert np.all(seq_in[:12 - n] == 0)  # left-padded
    np.testing.assert_array_equal(seq_in[12 - n + 1:], seq_t[12 - n:-1])  # targets shifted by one
  assert inputs.max() <= 30 and targets[targets > 0].min() >= 1


def _tiny_model_config(name: str):
  config = common.load_config(None, model__name=name, model__embed_dim=32, model__mlp_dim=64,
                              model__gru_dim=32, model__vocab_multiple=64)
  return config


@pytest.mark.parametrize("what", ["train", "eval"])
def test_flop_formula_matches_cost_analysis(what):
  """SASRec: the analytic count against XLA's on a shape where products dominate."""
  from dpr_jax.models import build_backbone, padded_vocab
  from dpr_jax.train.loss import full_softmax_ce

  config = _tiny_model_config("sasrec")
  b, length, num_items = 4, 32, 500
  model = build_backbone(config.model, num_items, length)
  vocab = padded_vocab(num_items, config.model.vocab_multiple)
  x = jnp.ones((b, length), jnp.int32)
  params = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, x)["params"])
  import flax.linen as nn
  params = nn.unbox(params)
  if what == "train":
    def loss(p):
      h = model.apply({"params": p}, x)
      return full_softmax_ce(h, model.apply({"params": p}, method=model.item_table), x,
                             num_items)[0]
    fn, want = jax.grad(loss), flops.backbone_train_step(config.model, b, length, vocab)
  else:
    def fn(p):
      h = model.apply({"params": p}, x, method=model.user_vector)
      return h @ model.apply({"params": p}, method=model.item_table).T
    want = flops.full_ranking_eval(config.model, b, length, vocab)
  got = common.cost_flops(jax.jit(fn).lower(params).compile())
  if got is None:
    pytest.skip("cost_analysis() has no flops on this backend")
  # XLA also counts elementwise work (softmax, layer norm, gelu): a few percent above.
  assert 0.97 * want <= got <= 1.2 * want, (got, want)


def test_gru4rec_forward_count_by_hand():
  # One position: input gates 6dg, recurrent 6g^2, projection 2gd; catalogue 2Vd per scored row.
  d, g, v = 4, 3, 10
  cfg = common.load_config(None, model__name="gru4rec", model__embed_dim=d, model__gru_dim=g)
  assert flops.backbone_forward(cfg.model, 1, 1, v) == 6 * d * g + 6 * g * g + 2 * g * d + 2 * v * d
  # Ranking projects the last position only (GRU4Rec.user_vector).
  assert (flops.full_ranking_eval(cfg.model, 2, 5, v)
          == 10 * (6 * d * g + 6 * g * g) + 2 * (2 * g * d) + 2 * 2 * v * d)


def test_serve_top10_matches_numpy_reference():
  from dpr_jax.bench import serve
  from dpr_jax.models import valid_item_mask

  config = _tiny_model_config("sasrec")
  config.model.vocab_multiple = 16
  num_items, length, num_tags = 60, 12, 5
  recommend, params, item_tags = serve.serve_setup(config, num_items, length, num_tags=num_tags,
                                                   prompt_dim=7)
  rng = np.random.default_rng(3)
  seqs, prompt, has_prompt = serve.requests(rng, 3, length, num_items, prompt_dim=7)
  has_prompt[2] = False  # one unprompted request
  scores, ids = recommend(params, item_tags, seqs, prompt, has_prompt)
  ids = np.asarray(ids)

  # Reference: the same modules unjitted, then scoring, masking and ranking in numpy.
  from dpr_jax.models import build_backbone
  from dpr_jax.models import build_head
  backbone = build_backbone(config.model, num_items, length)
  head = build_head(config, num_tags)
  h = jax.jit(backbone.apply)({"params": params["backbone"]}, seqs)[:, -1]

  @jax.jit
  def steer(p, *args):
    out = head.apply({"params": p}, *args)
    return out.user, out.tag_bias

  user, tag_bias = (np.asarray(a, np.float64) for a in steer(params["head"], h, prompt, has_prompt))
  table = np.asarray(params["backbone"]["item_embed"]["embedding"], np.float64)
  ref = user @ table.T + tag_bias @ np.asarray(item_tags, np.float64).T
  assert np.abs(tag_bias[:2]).max() > 0  # the tag coordinates take part
  assert np.all(tag_bias[2] == 0)
  valid = np.asarray(valid_item_mask(table.shape[0], num_items))
  for b in range(3):
    keep = valid.copy()
    keep[seqs[b]] = False
    keep[0] = False
    order = np.argsort(-np.where(keep, ref[b], -np.inf), kind="stable")[:10]
    np.testing.assert_array_equal(np.sort(ids[b]), np.sort(order))
    np.testing.assert_allclose(np.asarray(scores[b]), ref[b][ids[b]], rtol=1e-4, atol=1e-4)
    assert not set(ids[b]) & set(seqs[b][seqs[b] > 0].tolist())  # no seen item returned
    assert ids[b].min() >= 1 and ids[b].max() <= num_items
  assert np.all(np.diff(np.asarray(scores), axis=1) <= 0)  # best first


def test_cli_rejects_unknown_suite():
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, "-m", "dpr_jax.bench", "nope"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
  assert out.returncode == 2
  assert "usage: python -m dpr_jax.bench" in out.stderr and "nope" in out.stderr
  for suite in ("ce", "train", "eval", "serve", "moe", "scale"):
    assert suite in out.stderr
  out = subprocess.run([sys.executable, "-m", "dpr_jax.bench"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
  assert out.returncode == 2


def test_cli_unknown_option_exits_2():
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, "-m", "dpr_jax.bench", "scale", "--bogus"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2 and "--bogus" in out.stderr


def test_set_overrides_are_typed_and_bad_ones_refused():
  from dpr_jax.errors import ConfigError

  config = common.load_config_with_sets(
      str(ROOT / "configs" / "tiny.py"), ["train.lr=2e-3", "train.num_epochs=7",
                                          "train.compact_head=false", "train.lr_schedule=cosine"])
  assert (config.train.lr, config.train.num_epochs, config.train.compact_head,
          config.train.lr_schedule) == (2e-3, 7, False, "cosine")
  for bad, match in (("train.lrr=1", "unknown config key"), ("train.lr", "KEY=VALUE"),
                     ("train.num_epochs=many", "cannot convert")):
    with pytest.raises(ConfigError, match=match):
      common.load_config_with_sets(str(ROOT / "configs" / "tiny.py"), [bad])


def test_ttq_stops_at_the_target_and_records_the_curve(tmp_path, monkeypatch):
  from dpr_jax.bench import ttq
  from dpr_jax.errors import ConfigError

  argv = ["ttq", "--config", str(ROOT / "configs" / "tiny.py"), "--target", "1e-6",
          "--out", str(tmp_path), "--set", "train.eval_every_epochs=1",
          "--set", "train.num_epochs=4", "--run-dir", str(tmp_path / "run")]
  monkeypatch.setattr(sys, "argv", argv)
  ttq.main()
  record = json.loads((tmp_path / "ttq.json").read_text())
  curve = [r for r in record["rows"] if isinstance(r["epoch"], (int, float))]
  end = [r for r in record["rows"] if r not in curve]
  assert len(curve) == 1 and curve[0]["epoch"] == 1  # stopped at the first validation
  assert len(end) == 1 and 0 < curve[0]["wall_s"] <= end[0]["wall_s"]
  assert end[0]["test_ndcg@10"] > 0 and record["summary"]["dpr_jax"]["minutes_to_target"]
  assert (tmp_path / "ttq.png").stat().st_size > 0
  with pytest.raises(ConfigError, match="already holds a run"):
    ttq.main()  # the same --run-dir again: time to quality starts from scratch


def test_ttq_peer_trains_like_ours(tmp_path, monkeypatch):
  """The peer starts from our parameters, sees the same batches and stops by the same rules."""
  pytest.importorskip("torch")
  from dpr_jax.bench import ttq

  monkeypatch.setattr(sys, "argv", [
      "ttq", "--config", str(ROOT / "configs" / "tiny.py"), "--target", "0.99",
      "--out", str(tmp_path), "--set", "train.eval_every_epochs=1", "--set",
      "train.num_epochs=3", "--set", "train.lr_schedule=cosine", "--peer", "compact"])
  ttq.main()
  record = json.loads((tmp_path / "ttq.json").read_text())
  ours = [r for r in record["rows"] if r["run"] == "dpr_jax" and "train_loss" in r]
  peer = [r for r in record["rows"] if r["run"] == "torch compact" and "train_loss" in r]
  assert [r["epoch"] for r in ours] == [r["epoch"] for r in peer] == [1, 2, 3]
  # Same model, data and optimizer: the two learn alike (dropout draws differ).
  assert abs(ours[-1]["valid_ndcg@10"] - peer[-1]["valid_ndcg@10"]) < 0.05
  assert abs(ours[-1]["train_loss"] - peer[-1]["train_loss"]) < 0.3
  assert record["summary"]["torch compact"]["test_ndcg@10"] > 0.1


def test_parser_suite_times_training_and_reading(tmp_path):
  from dpr_jax.bench import parser as parser_bench

  parser_bench.main(["--config", str(ROOT / "configs" / "tiny.py"), "--dim", "16", "--batches", "1", "3",
                     "--reps", "1", "--out", str(tmp_path)])
  saved = json.loads((tmp_path / "parser.json").read_text())
  assert [(r["what"], r["batch"]) for r in saved["rows"]] == [("train", 128), ("read", 1),
                                                             ("read", 3)]
  assert saved["rows"][1]["members"] == 2  # tiny's ensemble
  assert all(r["p50_ms"] > 0 and r["requests_per_s"] > 0 for r in saved["rows"])
  assert saved["params"]["known_forms"] > saved["params"]["tags"] == 18
