"""Training-step throughput: SASRec, GRU4Rec (stage 1) and the DPR stage-3 step.

  python -m dpr_jax.bench train [--config configs/ml1m_sasrec.py ...] [--models sasrec gru4rec dpr]
                                [--steps 3] [--items 3706] [--batch 128] [--len 200] [--d 64]

Each model's real jitted step (``dpr_jax.train.step`` for the backbones; the head, loss and
optimizer of ``dpr_jax.train.steering`` for stage 3) runs on synthetic batches of full-length
sequences: compile time apart, then one warm-up call and ``--steps`` timed calls of one step
each. Reported: sequences/s and supervised positions/s at the p50 step time, p50/p90, compiled
memory (``memory_analysis()``), the analytic model FLOPs (``dpr_jax/bench/flops.py``) beside
XLA's ``cost_analysis()`` count, and the fraction of the dense-matmul floor measured in the same
process.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dpr_jax import sharding
from dpr_jax.bench import common, flops
from dpr_jax.data import pipeline
from dpr_jax.models import build_backbone, padded_vocab, valid_item_mask
from dpr_jax.train.step import (TrainState, create_state, jit_train_step, make_optimizer,
                                make_train_step)

COLUMNS = ("model", "B", "L", "d", "V", "compile_s", "p50_ms", "p90_ms", "seq_per_s",
           "positions_per_s", "model_gflop", "xla_gflop", "floor_fraction", "tflops",
           "peak_fraction", "compiled_peak_mib", "temp_mib")


def _timed_steps(compiled, state, batch, steps: int, warmup: int = 1
                 ) -> tuple[list[float], object]:
  """Threads the (donated) state through ``warmup`` untimed and ``steps`` timed calls."""
  import time

  for _ in range(warmup):
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return times, state


def _row(model: str, shapes: dict, compile_s: float, times: list[float], batch: int,
         positions: int, model_flops: float, compiled, rate: float, peak: float | None
         ) -> dict:
  p50 = statistics.median(times)
  mem = common.memory_stats(compiled) or {}
  xla = common.cost_flops(compiled)
  s = common.summary(times)
  return {"model": model, **shapes, "compile_s": compile_s, "p50_ms": s["p50_ms"],
          "p90_ms": s["p90_ms"], "steps": len(times), "seq_per_s": batch / p50,
          "positions_per_s": positions / p50, "model_gflop": model_flops / 1e9,
          "xla_gflop": None if xla is None else xla / 1e9,
          "floor_fraction": common.floor_fraction(model_flops, p50, rate),
          **common.peak_columns(model_flops, p50, peak),
          "compiled_peak_mib": mem.get("peak_mib"), "temp_mib": mem.get("temp_mib")}


def backbone_step(config, num_items: int, batch: int, length: int, seed: int = 0):
  """(compiled step, state, device batch, compile seconds) of one stage-1 step.

  The batch holds one step (``steps_per_call`` = 1) of full-length synthetic sequences.
  """
  mesh = sharding.make_mesh(-1, config.mesh.model)
  model = build_backbone(config.model, num_items, length)
  tx = make_optimizer(config.train, steps_per_epoch=1)  # timing: a schedule's values do not matter
  state, shardings = create_state(model, tx, mesh, seed, length)
  step = jit_train_step(make_train_step(model, tx, num_items, seed), mesh, shardings)
  inputs, targets = common.synthetic_sequences(np.random.default_rng(seed), (1, batch, length),
                                               num_items)
  dev_batch = pipeline.to_global({"inputs": inputs, "targets": targets}, mesh)
  compiled, compile_s = common.compile_timed(step, state, dev_batch)
  return compiled, state, dev_batch, compile_s


def bench_backbone(config, num_items: int, batch: int, length: int, steps: int,
                   rate: float) -> dict:
  compiled, state, dev_batch, compile_s = backbone_step(config, num_items, batch, length)
  times, _ = _timed_steps(compiled, state, dev_batch, steps)
  vocab = padded_vocab(num_items, config.model.vocab_multiple)
  positions = int(np.sum(np.asarray(dev_batch["targets"]) > 0))
  shapes = {"B": batch, "L": length, "d": config.model.embed_dim, "V": vocab}
  return _row(config.model.name, shapes, compile_s, times, batch, positions,
              flops.backbone_train_step(config.model, batch, length, vocab), compiled, rate,
              common.peak_tflops(config.model.compute_dtype))


def stage3_setup(config, num_items: int, batch: int, num_tags: int = common.ML1M_TAGS,
                 prompt_dim: int = common.PROMPT_DIM, seed: int = 0):
  """(head, init, catalogue, host batch, vocab) of a synthetic DPR stage-3 step.

  The frozen catalogue (item table + tags) is random; the host batch (numpy, [1, B, ...]) mixes
  unprompted, positive and negative examples as the stage-3 pipeline does; ``init()`` returns the
  head's (boxed) parameters.
  """
  from dpr_jax.models import build_head
  from dpr_jax.train.examples import FrozenCatalogue

  rng = np.random.default_rng(seed)
  d = config.model.embed_dim
  vocab = padded_vocab(num_items, config.model.vocab_multiple)
  tags = np.zeros((vocab, num_tags), np.float32)
  tags[1:num_items + 1] = rng.random((num_items, num_tags)) < 0.15
  catalogue = FrozenCatalogue(table=jnp.asarray(rng.standard_normal((vocab, d)) * d**-0.5,
                                                jnp.float32),
                              item_tags=jnp.asarray(tags), valid=valid_item_mask(vocab, num_items))
  head = build_head(config, num_tags)
  profile = jnp.zeros((1, num_tags)) if head.use_profile else None
  init = lambda: head.init({"params": jax.random.key(seed)}, jnp.zeros((1, d)),  # noqa: E731
                           jnp.zeros((1, prompt_dim)), jnp.ones((1,), bool), profile)["params"]
  kind = rng.choice(3, size=(1, batch), p=[0.1, 0.45, 0.45]).astype(np.int32)
  host = {
      "h": rng.standard_normal((1, batch, d)).astype(np.float32),
      "prompt": (rng.standard_normal((1, batch, prompt_dim)) * 0.05).astype(np.float32),
      "target": rng.integers(1, num_items + 1, (1, batch)).astype(np.int32),
      "kind": kind,
      "tag": np.where(kind > 0, rng.integers(0, num_tags, (1, batch)), -1).astype(np.int32),
  }
  if head.use_profile:
    host["profile"] = rng.dirichlet(np.ones(num_tags), (1, batch)).astype(np.float32)
  return head, init, catalogue, host, vocab


def stage3_calls(head, tx, steer_config, mesh=None):
  """``(state, batch [S, B, ...], catalogue) -> (state, metrics)``: S steps of the steering loss
  and its update in one scan (traced under the mesh's activation rules when ``mesh`` is given)."""
  from dpr_jax.train.steering import steering_loss

  def calls(st: TrainState, b, cat):
    def one_step(st: TrainState, x):
      (_, metrics), grads = jax.value_and_grad(
          lambda p: steering_loss(head, p, x, cat, steer_config), has_aux=True)(st.params)
      updates, opt_state = tx.update(grads, st.opt_state, st.params)
      return TrainState(st.step + 1, optax.apply_updates(st.params, updates), opt_state), metrics

    with sharding.activation_rules(mesh) if mesh is not None else contextlib.nullcontext():
      return jax.lax.scan(one_step, st, b)

  return calls


def dpr_stage3_step(config, num_items: int, batch: int, num_tags: int = common.ML1M_TAGS,
                    prompt_dim: int = common.PROMPT_DIM, seed: int = 0):
  """(compiled step, state, device batch, compile seconds, vocab) of one DPR stage-3 step
  (:func:`stage3_setup`'s inputs, one device)."""
  head, init, catalogue, host, vocab = stage3_setup(config, num_items, batch, num_tags,
                                                    prompt_dim, seed)
  params = common.random_params(init, seed)
  tx = optax.adamw(config.stage3.lr, weight_decay=0.0)
  state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  calls = stage3_calls(head, tx, config.stage3)
  step = jax.jit(lambda st, b: calls(st, b, catalogue), donate_argnums=(0,))
  dev_batch = {k: jnp.asarray(v) for k, v in host.items()}
  compiled, compile_s = common.compile_timed(step, state, dev_batch)
  return compiled, state, dev_batch, compile_s, vocab


def bench_dpr(config, num_items: int, batch: int, steps: int, rate: float) -> dict:
  compiled, state, dev_batch, compile_s, vocab = dpr_stage3_step(config, num_items, batch)
  times, _ = _timed_steps(compiled, state, dev_batch, steps)
  head = config.dpr
  dense = head.dispatch == "dense" or (head.dispatch == "auto" and head.num_experts <= 8)
  model_flops = flops.dpr_stage3_step(
      batch, config.model.embed_dim, common.ML1M_TAGS, vocab, common.PROMPT_DIM,
      head.adapter_hidden, head.num_experts, head.num_experts if dense else head.top_k,
      head.expert_hidden)
  shapes = {"B": batch, "L": 1, "d": config.model.embed_dim, "V": vocab}
  return _row("dpr_stage3", shapes, compile_s, times, batch, batch, model_flops, compiled, rate,
              common.peak_tflops("float32"))


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench train", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  common.add_shape_args(p)
  p.add_argument("--models", nargs="+", default=["sasrec", "gru4rec", "dpr"],
                 choices=["sasrec", "gru4rec", "dpr"])
  positive = common.positive_int  # counts and sizes: >= 1
  p.add_argument("--steps", type=positive, default=3,
                 help="timed steps per model (after a warm-up)")
  p.add_argument("--dpr-batch", type=positive, default=None,
                 help="stage-3 batch (default: config's)")
  common.add_common_args(p)
  a = p.parse_args(argv)
  rate = common.matmul_flop_rate()
  rows = []

  def make():
    return common.make_record("train", rows, {
        "config": a.config or "defaults", "items": a.items, "steps": a.steps, **rate,
        "peak_tflops": {t: common.peak_tflops(t) for t in ("float32", "bfloat16")},
        "peak_rss_mib": round(common.peak_rss_mib(), 1),
        "device_peak_mib": common.device_peak_mib()}, notes=[
        "One step per call on full-length synthetic sequences (every position supervised); "
        "p50/p90 over the timed steps after one warm-up call; compile time apart.",
        "model_gflop: analytic matmul FLOPs per step (dpr_jax/bench/flops.py: 3 x forward, no "
        "recompute); xla_gflop: compiled.cost_analysis()['flops'] (counts a scan body once, so "
        "GRU4Rec's recurrence is undercounted).",
        "floor_fraction = model_gflop / matmul rate / p50 step time, the matmul rate measured in "
        f"this process ({rate['matmul_gflops']:.1f} GFLOP/s at n={rate['matmul_n']}).",
        "tflops = model_gflop / p50 step time; peak_fraction = tflops / the device's datasheet "
        "peak for the compute dtype (dpr_jax/bench/common.py PEAK_TFLOPS; float32 = TF32 on "
        "NVIDIA), empty where the device has none (CPU).",
        "compiled_peak_mib: memory_analysis() arguments + outputs - donated + temporaries.",
        "dpr_stage3: the stage-3 step (head + steering loss over the whole catalogue + AdamW) on "
        "precomputed user vectors, L=1; positions = examples."])

  overrides = dict(model__embed_dim=a.d, data__max_len=a.len, train__batch_size=a.batch)
  backbones = [m for m in a.models if m != "dpr"]
  for config in common.model_configs(a.config, backbones, **overrides):
    rows.append(bench_backbone(config, a.items, config.train.batch_size, config.data.max_len,
                               a.steps, rate["matmul_gflops"] * 1e9))
    print({k: rows[-1][k] for k in ("model", "compile_s", "p50_ms", "seq_per_s")}, flush=True)
    common.write_record(make(), a.out, a.tag, COLUMNS, quiet=True)  # partial
  if "dpr" in a.models:
    config = common.load_config(a.config[0] if a.config else None, **overrides)
    rows.append(bench_dpr(config, a.items, a.dpr_batch or config.stage3.batch_size, a.steps,
                          rate["matmul_gflops"] * 1e9))
    print({k: rows[-1][k] for k in ("model", "compile_s", "p50_ms", "seq_per_s")}, flush=True)
    common.write_record(make(), a.out, a.tag, COLUMNS, quiet=True)  # partial
  common.write_record(make(), a.out, a.tag, COLUMNS)


if __name__ == "__main__":
  main()
