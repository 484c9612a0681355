"""Full-ranking evaluation throughput: users/s scored against the whole catalogue.

  python -m dpr_jax.bench eval [--config configs/ml1m_sasrec.py] [--models sasrec gru4rec]
                               [--users 6040] [--eval-batch 256] [--reps 2]

Runs the trainer's own evaluation step (``dpr_jax.eval.ranking.make_eval_step``: last-position
user vector, one [B, d] x [d, V] product, seen-item mask, masked and unmasked Recall/NDCG@k)
over ``--users`` synthetic users in batches of ``--eval-batch``, the metric sums kept on device
and fetched once per pass, as in training. Reported: users/s of a whole pass (median over
``--reps`` passes after a warm-up pass), the per-batch time, compiled memory, model FLOPs and
the fraction of the dense-matmul floor.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from dpr_jax import sharding
from dpr_jax.bench import common, flops
from dpr_jax.eval.ranking import average, make_eval_step
from dpr_jax.models import build_backbone, padded_vocab

COLUMNS = ("model", "users", "B", "L", "d", "V", "compile_s", "pass_s", "users_per_s",
           "batch_p50_ms", "model_gflop", "xla_gflop", "floor_fraction", "compiled_peak_mib")


def eval_setup(config, num_items: int, num_users: int, batch: int, length: int, seed: int = 0):
  """(jitted step, params, host batches) for a full-ranking pass over synthetic users."""
  mesh = sharding.make_mesh(-1, config.mesh.model)
  model = build_backbone(config.model, num_items, length)
  params = common.random_params(lambda: model.init(
      {"params": jax.random.key(seed)}, np.zeros((1, length), np.int32))["params"], seed)
  user_vectors = lambda p, x: model.apply({"params": p}, x)[:, -1]
  item_table = lambda p: model.apply({"params": p}, method=model.item_table)
  step = jax.jit(make_eval_step(user_vectors, item_table, num_items, tuple(config.eval.ks)))
  rng = np.random.default_rng(seed)
  inputs, _ = common.synthetic_sequences(rng, (num_users, length), num_items,
                                         min_len=min(20, length))
  history = np.concatenate([inputs[:, ::-1], np.zeros((num_users, 2), np.int32)], axis=1)
  seen_len = np.sum(inputs > 0, axis=1).astype(np.int32)
  targets = rng.integers(1, num_items + 1, num_users).astype(np.int32)
  batches = []
  for start in range(0, num_users, batch):
    idx = np.arange(start, start + batch)
    weight = (idx < num_users).astype(np.float32)
    idx = np.minimum(idx, num_users - 1)
    batches.append({"inputs": inputs[idx], "targets": targets[idx], "history": history[idx],
                    "seen_len": seen_len[idx], "weight": weight})
  del mesh
  return step, params, batches


def bench_model(config, num_items: int, num_users: int, batch: int, length: int, reps: int,
                rate: float) -> dict:
  step, params, batches = eval_setup(config, num_items, num_users, batch, length)
  compiled, compile_s = common.compile_timed(step, params, batches[0])
  device_batches = [jax.device_put(b) for b in batches]

  def one_pass():
    return average(compiled(params, b) for b in device_batches)

  result = one_pass()  # warm-up
  assert result["users"] == num_users, result
  pass_times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    one_pass()
    pass_times.append(time.perf_counter() - t0)
  batch_times = common.time_calls(lambda: compiled(params, device_batches[0]), reps=5)
  vocab = padded_vocab(num_items, config.model.vocab_multiple)
  per_batch = flops.full_ranking_eval(config.model, batch, length, vocab)
  model_flops = per_batch * len(batches)
  pass_s = statistics.median(pass_times)
  xla = common.cost_flops(compiled)
  mem = common.memory_stats(compiled) or {}
  return {"model": config.model.name, "users": num_users, "B": batch, "L": length,
          "d": config.model.embed_dim, "V": vocab, "compile_s": compile_s, "pass_s": pass_s,
          "passes": reps, "users_per_s": num_users / pass_s,
          "batch_p50_ms": statistics.median(batch_times) * 1e3,
          "model_gflop": model_flops / 1e9,
          "xla_gflop": None if xla is None else xla * len(batches) / 1e9,
          "floor_fraction": common.floor_fraction(model_flops, pass_s, rate),
          "compiled_peak_mib": mem.get("peak_mib")}


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench eval", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  common.add_shape_args(p)
  p.add_argument("--models", nargs="+", default=["sasrec", "gru4rec"], choices=["sasrec", "gru4rec"])
  p.add_argument("--users", type=int, default=common.ML1M_USERS)
  p.add_argument("--eval-batch", type=int, default=None, help="users per batch (config's)")
  p.add_argument("--reps", type=int, default=2, help="timed passes (after a warm-up pass)")
  common.add_common_args(p)
  a = p.parse_args(argv)
  rate = common.matmul_flop_rate()
  rows = []
  for config in common.model_configs(a.config, a.models, model__embed_dim=a.d,
                                     data__max_len=a.len, eval__batch_size=a.eval_batch):
    rows.append(bench_model(config, a.items, a.users, config.eval.batch_size,
                            config.data.max_len, a.reps, rate["matmul_gflops"] * 1e9))
    print({k: rows[-1][k] for k in ("model", "compile_s", "pass_s", "users_per_s")}, flush=True)
  record = common.make_record("eval", rows, {
      "config": a.config or "defaults", "items": a.items, **rate,
      "peak_rss_mib": round(common.peak_rss_mib(), 1)}, notes=[
      "users_per_s: users / median wall time of a full pass (every batch, metric sums fetched "
      "once), after a warm-up pass; batch_p50_ms: one batch alone, median of 5.",
      "Synthetic users with 20..L items; the forward runs over all L positions (as in training "
      "evaluation), then the last position is scored against every item.",
      "model_gflop: analytic matmul FLOPs of the pass (dpr_jax/bench/flops.py); xla_gflop: "
      "cost_analysis() of one batch x batches (GRU4Rec's scan body counted once).",
      f"floor_fraction = model_gflop / matmul rate / pass_s ({rate['matmul_gflops']:.1f} GFLOP/s "
      f"at n={rate['matmul_n']}, same process)."])
  common.write_record(record, a.out, a.tag, COLUMNS)


if __name__ == "__main__":
  main()
