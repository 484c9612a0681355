"""Serving latency: one prompted request (history + prompt embedding -> top-10), and batches.

  python -m dpr_jax.bench serve [--config configs/ml1m_sasrec.py] [--models sasrec gru4rec]
                                [--calls 200] [--batches 1 16 64 256]

A request is one jitted function (:func:`make_recommend`): the backbone on the left-padded
history int[B, L] -> the last user vector -> the DPR head (adapter, router, experts, fusion) ->
scores over the retrieval space ``[item table, item tags]`` with invalid rows and the user's
own history masked -> ``lax.top_k``. The prompt embedding is an input (the text encoder runs
once per prompt text and is cached, as in dpr_jax/prompts/bank.py). Parameters are random with
the shapes of a trained model. Inputs arrive as host numpy arrays and the top-10 ids return to
the host, so each timed call includes both transfers.

Reported: p50/p90/p99 latency of ``--calls`` single requests after warm-up, and the throughput
(requests/s at the p50 call time) of batched requests at each size in ``--batches``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax.bench import common
from dpr_jax.eval.ranking import length_buckets
from dpr_jax.models import build_backbone, padded_vocab, retrieval, valid_item_mask
from dpr_jax.models.dpr import tag_profile

COLUMNS = ("model", "B", "L", "d", "V", "E", "compile_s", "p50_ms", "p90_ms", "p99_ms",
           "requests_per_s", "calls")


def make_recommend(backbone: nn.Module, head: nn.Module, num_items: int, k: int = 10,
                   exclude_seen: bool = True):
  """``(params, item_tags, seqs, prompt, has_prompt) -> (scores float32[B, k], ids int32[B, k])``.

  Args (of the returned function):
    params: {"backbone": ..., "head": ...}.
    item_tags: float[V, T] multi-hot tags of every table row (padding rows zero).
    seqs: int[B, W] left-padded histories, W <= L; prompt: float[B, D_t]; has_prompt: bool[B].
  Items 0 and > num_items, and (with ``exclude_seen``) the items in ``seqs``, are never returned.
  """

  def recommend(params, item_tags, seqs, prompt, has_prompt):
    with jax.named_scope("backbone"):
      h = backbone.apply({"params": params["backbone"]}, seqs,
                         method=backbone.user_vector)  # [B, d], as the Recommender queries it
      table = backbone.apply({"params": params["backbone"]}, method=backbone.item_table)
    out = head.apply({"params": params["head"]}, h, prompt, has_prompt,
                     tag_profile(seqs, item_tags))  # (read with dpr.user_profile only)
    scores = retrieval.scores(out.user, table, out.tag_bias, item_tags)  # [B, V]
    keep = valid_item_mask(table.shape[0], num_items)[None, :]
    if exclude_seen:
      seen = jnp.zeros(scores.shape, bool).at[jnp.arange(seqs.shape[0])[:, None], seqs].set(True)
      keep = keep & ~seen
    with jax.named_scope("top_k"):
      return retrieval.top_k(scores, keep, k)

  return recommend


def serve_setup(config, num_items: int, length: int, num_tags: int = common.ML1M_TAGS,
                prompt_dim: int = common.PROMPT_DIM, seed: int = 0):
  """(jitted recommend, params, item_tags) with random parameters of the configured shapes
  (:func:`common.random_params`)."""
  from dpr_jax.models import build_head

  backbone = build_backbone(config.model, num_items, length)
  head = build_head(config, num_tags)
  d = config.model.embed_dim
  key = jax.random.key(seed)
  params = common.random_params(lambda: {
      "backbone": backbone.init({"params": key}, jnp.zeros((1, length), jnp.int32))["params"],
      "head": head.init({"params": key}, jnp.zeros((1, d)), jnp.zeros((1, prompt_dim)),
                        jnp.ones((1,), bool), jnp.zeros((1, num_tags)))["params"]}, seed)
  vocab = padded_vocab(num_items, config.model.vocab_multiple)
  rng = np.random.default_rng(seed)
  tags = np.zeros((vocab, num_tags), np.float32)
  tags[1:num_items + 1] = rng.random((num_items, num_tags)) < 0.15
  return jax.jit(make_recommend(backbone, head, num_items)), params, jnp.asarray(tags)


def requests(rng: np.random.Generator, batch: int, length: int, num_items: int,
             prompt_dim: int = common.PROMPT_DIM):
  """Host inputs of ``batch`` prompted requests: (seqs, prompt, has_prompt)."""
  seqs, _ = common.synthetic_sequences(rng, (batch, length), num_items, min_len=min(20, length))
  prompt = (rng.standard_normal((batch, prompt_dim)) * 0.05).astype(np.float32)
  return seqs, prompt, np.ones((batch,), bool)


def bench_model(config, num_items: int, length: int, batches: list[int], calls: int,
                history_len: int | None = None) -> list[dict]:
  """Rows of one backbone. ``history_len``: requests carry histories of at most this many
  items, left-padded to the width the Recommender would use (``length_buckets``); None: the
  full ``length``."""
  recommend, params, item_tags = serve_setup(config, num_items, length)
  width = length if history_len is None else next(
      w for w in length_buckets(length) if w >= min(history_len, length))
  rng = np.random.default_rng(1)
  vocab = item_tags.shape[0]
  rows = []
  for b in batches:
    args = requests(rng, b, width, num_items)
    compiled, compile_s = common.compile_timed(recommend, params, item_tags, *args)
    n = calls if b == 1 else max(10, calls // 10)
    for _ in range(5):  # warm-up
      np.asarray(compiled(params, item_tags, *args)[1])
    times = []
    for _ in range(n):
      t0 = time.perf_counter()
      np.asarray(compiled(params, item_tags, *args)[1])  # ids back on the host
      times.append(time.perf_counter() - t0)
    s = common.summary(times)
    rows.append({"model": config.model.name, "B": b, "L": width, "d": config.model.embed_dim,
                 "V": vocab, "E": config.dpr.num_experts, "compile_s": compile_s,
                 "p50_ms": s["p50_ms"], "p90_ms": s["p90_ms"], "p99_ms": s["p99_ms"],
                 "requests_per_s": b / statistics.median(times), "calls": n})
    print({k: rows[-1][k] for k in ("model", "B", "p50_ms", "p99_ms", "requests_per_s")},
          flush=True)
  return rows


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench serve", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  common.add_shape_args(p)
  p.add_argument("--models", nargs="+", default=["sasrec", "gru4rec"], choices=["sasrec", "gru4rec"])
  positive = common.positive_int  # counts and sizes: >= 1
  p.add_argument("--calls", type=positive, default=200, help="timed single requests (B=1)")
  p.add_argument("--batches", nargs="+", type=positive, default=[1, 16, 64, 256])
  p.add_argument("--history-len", type=positive, default=None,
                 help="items per history (default: --len); inputs are cut to the Recommender's"
                      " width for it, e.g. 95 (the median ML-1M history) -> 104 columns")
  common.add_common_args(p)
  a = p.parse_args(argv)
  rows = []

  def make():
    return common.make_record("serve", rows, {
        "config": a.config or "defaults", "items": a.items, "top_k": 10,
        "history_len": a.history_len,
        "peak_rss_mib": round(common.peak_rss_mib(), 1)}, notes=[
        "One call = host numpy inputs -> jitted backbone + DPR head + scores over [items, tags] "
        "with invalid and seen items masked + top-10 -> ids on the host.",
        "B=1: p50/p90/p99 over `calls` requests after 5 warm-up calls; B>1: calls/10 (at least "
        "10) batched calls; requests_per_s = B / p50.",
        "Random parameters with the configured shapes; every request prompted (has_prompt)."])

  for config in common.model_configs(a.config, a.models, model__embed_dim=a.d,
                                     data__max_len=a.len):
    rows += bench_model(config, a.items, config.data.max_len, a.batches, a.calls, a.history_len)
    common.write_record(make(), a.out, a.tag, COLUMNS, quiet=True)  # partial
  common.write_record(make(), a.out, a.tag, COLUMNS)


if __name__ == "__main__":
  main()
