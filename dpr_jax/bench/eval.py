"""Full-ranking evaluation throughput: users/s scored against the whole catalogue.

  python -m dpr_jax.bench eval [--config configs/ml1m_sasrec.py ...] [--models sasrec gru4rec]
                               [--users 6040] [--eval-batch 256] [--reps 2]

Runs the trainer's own evaluator (``dpr_jax.eval.ranking.Evaluator`` around ``make_eval_step``:
last-position user vector, one [B, d] x [d, V] product, seen-item mask, masked and unmasked
Recall/NDCG@k, sums fetched once per pass) on the test split of ``--users`` synthetic users
with ML-1M-like sequence lengths (:func:`common.synthetic_split`). Reported: users/s of a whole
pass (median over ``--reps`` passes after a warm-up pass that also compiles), compiled memory,
model FLOPs (counted per batch at the width the evaluator feeds) and the fraction of the
dense-matmul floor.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from dpr_jax import sharding
from dpr_jax.bench import common, flops
from dpr_jax.eval import ranking
from dpr_jax.models import build_backbone, padded_vocab

COLUMNS = ("model", "users", "B", "L", "mean_width", "d", "V", "compile_s", "pass_s", "users_per_s",
           "model_gflop", "xla_gflop", "floor_fraction", "tflops", "peak_fraction",
           "compiled_peak_mib")


def eval_setup(config, num_items: int, num_users: int, length: int, seed: int = 0):
  """(Evaluator, params, SplitData, model) for a full-ranking pass over synthetic users
  (``config.eval.batch_size`` users per call)."""
  mesh = sharding.make_mesh(-1, config.mesh.model)
  model = build_backbone(config.model, num_items, length)
  params = common.random_params(lambda: model.init(
      {"params": jax.random.key(seed)}, np.zeros((1, length), np.int32))["params"], seed)
  evaluator = ranking.backbone_evaluator(model, config, mesh, sharding.replicated(mesh),
                                         num_items)  # as dpr_jax/train/trainer.py
  return evaluator, params, common.synthetic_split(num_users, num_items, length, seed), model


def _batch_widths(evaluator, data, split: str) -> list[int]:
  """Input width of every batch the evaluator runs (it may cut left padding)."""
  extra = (evaluator.trim,) if hasattr(evaluator, "trim") else ()
  return [b["inputs"].shape[1] for b in ranking.eval_batches(data, split, evaluator.batch_size,
                                                             *extra)]


def bench_model(config, num_items: int, num_users: int, length: int, reps: int,
                rate: float) -> dict:
  evaluator, params, data, _ = eval_setup(config, num_items, num_users, length)
  t0 = time.perf_counter()
  result = evaluator(params, data, "test")  # compiles every batch width, warms up
  first_s = time.perf_counter() - t0
  if result["users"] != num_users:
    raise AssertionError(f"evaluated {result['users']} users, expected {num_users}")
  pass_times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    evaluator(params, data, "test")
    pass_times.append(time.perf_counter() - t0)
  vocab = padded_vocab(num_items, config.model.vocab_multiple)
  widths = _batch_widths(evaluator, data, "test")
  model_flops = sum(flops.full_ranking_eval(config.model, evaluator.batch_size, w, vocab)
                    for w in widths)
  first = next(ranking.eval_batches(data, "test", evaluator.batch_size))
  compiled = evaluator._step.lower(params, first).compile()  # full-width batch, for analysis
  xla = common.cost_flops(compiled)
  mem = common.memory_stats(compiled) or {}
  pass_s = statistics.median(pass_times)
  return {"model": config.model.name, "users": num_users, "B": evaluator.batch_size,
          "L": length, "d": config.model.embed_dim, "V": vocab,
          "compile_s": first_s - pass_s, "pass_s": pass_s, "passes": reps,
          "batches": len(widths), "mean_width": float(np.mean(widths)),
          "users_per_s": num_users / pass_s, "model_gflop": model_flops / 1e9,
          "xla_gflop": None if xla is None else xla * len(widths) / 1e9,
          "floor_fraction": common.floor_fraction(model_flops, pass_s, rate),
          **common.peak_columns(model_flops, pass_s,
                                common.peak_tflops(config.model.compute_dtype)),
          "compiled_peak_mib": mem.get("peak_mib")}


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench eval", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  common.add_shape_args(p)
  p.add_argument("--models", nargs="+", default=["sasrec", "gru4rec"], choices=["sasrec", "gru4rec"])
  positive = common.positive_int  # counts and sizes: >= 1
  p.add_argument("--users", type=positive, default=common.ML1M_USERS)
  p.add_argument("--eval-batch", type=positive, default=None, help="users per batch (config's)")
  p.add_argument("--reps", type=positive, default=2, help="timed passes (after a warm-up pass)")
  common.add_common_args(p)
  a = p.parse_args(argv)
  rate = common.matmul_flop_rate()
  rows = []

  def make():
    return common.make_record("eval", rows, {
        "config": a.config or "defaults", "items": a.items, **rate,
        "peak_tflops": {t: common.peak_tflops(t) for t in ("float32", "bfloat16")},
        "peak_rss_mib": round(common.peak_rss_mib(), 1)}, notes=[
        "users_per_s: users / median wall time of a full pass of the trainer's Evaluator over the "
        "test split (host batches in, metric sums fetched once), after a warm-up pass; compile_s: "
        "the warm-up pass minus a timed pass.",
        "Synthetic users with ML-1M-like lengths (common.synthetic_split); the backbone runs at "
        "the width of each batch (mean_width), then the last position is scored against every "
        "item.",
        "model_gflop: analytic matmul FLOPs of the pass at the widths fed (dpr_jax/bench/flops.py);"
        " xla_gflop: cost_analysis() of a full-width batch x batches (loop bodies counted once: "
        "GRU4Rec's scan, SASRec's chunks of users).",
        f"floor_fraction = model_gflop / matmul rate / pass_s ({rate['matmul_gflops']:.1f} GFLOP/s "
        f"at n={rate['matmul_n']}, same process); tflops = model_gflop / pass_s; peak_fraction ="
        " tflops / the device's datasheet peak (common.PEAK_TFLOPS), empty where unknown (CPU)."])

  for config in common.model_configs(a.config, a.models, model__embed_dim=a.d,
                                     data__max_len=a.len, eval__batch_size=a.eval_batch):
    rows.append(bench_model(config, a.items, a.users, config.data.max_len, a.reps,
                            rate["matmul_gflops"] * 1e9))
    print({k: rows[-1][k] for k in ("model", "compile_s", "pass_s", "users_per_s")}, flush=True)
    common.write_record(make(), a.out, a.tag, COLUMNS, quiet=True)  # partial
  common.write_record(make(), a.out, a.tag, COLUMNS)


if __name__ == "__main__":
  main()
