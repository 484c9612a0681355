"""The request parser: a training step and the ensemble's reading of requests.

  python -m dpr_jax.bench parser [--config ...] [--dim 384] [--batches 1 256] [--reps 10]

Stage 2 trains ``parser.members`` parsers one after the other, and every request DPR serves is
read by all of them (``dpr_jax.models.parser``), so the parser's step is stage 2's time and its
ensemble part of each request's latency. At the config's shapes (``parser.batch_size`` requests
of ``parser.max_tokens`` token states of width ``--dim``: 384 for all-MiniLM-L6-v2, 768 for
all-mpnet-base-v2; the domain's real table of known surface forms, ``dpr_jax.prompts.reader.
form_texts``, with random unit embeddings), on random token states (no text encoder needed):

- ``train``: ``train.steps_per_call`` scanned steps of ``dpr_jax.train.parser.parser_step``
  (the stance loss with form dropout, AdamW); per step, and requests / s.
- ``read``: ``parser.members`` parsers' mean stance probabilities
  (``dpr_jax.models.parser.ensemble_probs``, each member's forms adapted once, as
  ``dpr_jax.prompts.reader`` reads) for batches of ``--batches`` requests.

p50 of ``--reps`` calls after a compile and a warm-up call; compare two versions of the code by
running the suite at each, back to back.
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax.bench import common
from dpr_jax.models.parser import adapted_forms, ensemble_probs
from dpr_jax.prompts import generator
from dpr_jax.prompts.reader import build_parser, form_texts
from dpr_jax.train.parser import parser_optimizer, parser_step
from dpr_jax.train.step import TrainState

COLUMNS = ("what", "members", "batch", "p50_ms", "p90_ms", "per_step_ms", "requests_per_s")


def _inputs(rng: np.random.Generator, n: int, batch: int, tokens: int, dim: int, num_forms: int,
            num_tags: int, clause_cue: bool) -> dict[str, jax.Array]:
  """``n`` batches of random requests: token states float16[n, B, S, D], their mask (lengths
  4..S), no negation cue (nor, with ``clause_cue``, a per-token one: float32[n, B, S]), random
  stance labels int32[n, B, T], and which known forms each contains (bool[n, B, M], about one
  per request, as generated requests do)."""
  lengths = rng.integers(4, tokens + 1, (n, batch))
  out = {"tokens": jnp.asarray(rng.standard_normal((n, batch, tokens, dim)), jnp.float16),
         "mask": jnp.asarray(np.arange(tokens)[None, None] < lengths[..., None]),
         "cue": jnp.zeros((n, batch), jnp.float32),
         "labels": jnp.asarray(rng.integers(0, 3, (n, batch, num_tags)), jnp.int32),
         "contains": jnp.asarray(rng.random((n, batch, num_forms)) < 1.0 / num_forms)}
  if clause_cue:
    out["clause_cue"] = jnp.zeros((n, batch, tokens), jnp.float32)
  return out


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench parser", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default=None, help="preset for the parser's settings and domain")
  positive = common.positive_int
  p.add_argument("--dim", type=positive, default=384, help="width of the encoder's token states")
  p.add_argument("--batches", nargs="+", type=positive, default=[1, 256],
                 help="requests per reading call")
  p.add_argument("--reps", type=positive, default=10)
  common.add_common_args(p)
  a = p.parse_args(argv)
  config = common.load_config(a.config)
  pc = config.parser
  tags = generator.DOMAIN_TAGS[config.dpr.domain]
  texts, form_tag = form_texts(config.dpr.domain, tags)
  rng = np.random.default_rng(0)
  forms = rng.standard_normal((len(texts), a.dim)).astype(np.float32)
  forms = jnp.asarray(forms / np.linalg.norm(forms, axis=1, keepdims=True))
  form_tag = jnp.asarray(form_tag, jnp.int32)
  model = build_parser(config, len(tags))
  spc = config.train.steps_per_call
  batch = _inputs(rng, spc, pc.batch_size, pc.max_tokens, a.dim, len(texts), len(tags),
                  pc.clause_cue)
  sample_cue = batch["clause_cue"][0, :1] if pc.clause_cue else None
  params = nn.unbox(model.init(jax.random.key(0), batch["tokens"][0, :1], batch["mask"][0, :1],
                               batch["cue"][0, :1], forms, form_tag,
                               clause_cue=sample_cue)["params"])
  tx = parser_optimizer(pc)
  one_step = parser_step(model, tx, pc, forms, form_tag, jax.random.key(1))  # the trainer's
  steps = jax.jit(lambda carry, b: jax.lax.scan(one_step, carry, b))
  carry = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  compiled, _ = common.compile_timed(steps, carry, batch)
  times = common.time_calls(lambda: compiled(carry, batch), a.reps)
  s = common.summary(times)
  rows = [{"what": "train", "members": 1, "batch": pc.batch_size, "p50_ms": s["p50_ms"],
           "p90_ms": s["p90_ms"], "per_step_ms": s["p50_ms"] / spc,
           "requests_per_s": pc.batch_size * spc / (s["p50_ms"] / 1e3)}]
  print(f"train: {rows[-1]['per_step_ms']:.1f} ms per step of {pc.batch_size}", flush=True)

  stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (pc.members,) + x.shape), params)
  read = jax.jit(lambda q, f, t, m, c, cc: ensemble_probs(model, q, t, m, c, forms, form_tag, f,
                                                         clause_cue=cc))
  member_forms = jax.jit(jax.vmap(lambda q: adapted_forms(model, q, forms)))(stacked)
  for size in a.batches:
    r = _inputs(rng, 1, size, pc.max_tokens, a.dim, len(texts), len(tags), pc.clause_cue)
    args = (stacked, member_forms, r["tokens"][0], r["mask"][0], r["cue"][0],
            r["clause_cue"][0] if pc.clause_cue else None)
    compiled, _ = common.compile_timed(read, *args)
    s = common.summary(common.time_calls(lambda c=compiled, x=args: c(*x), a.reps))
    rows.append({"what": "read", "members": pc.members, "batch": size, "p50_ms": s["p50_ms"],
                 "p90_ms": s["p90_ms"], "requests_per_s": size / (s["p50_ms"] / 1e3)})
    print(f"read: {s['p50_ms']:.2f} ms for {size} request(s), {pc.members} parsers", flush=True)
  record = common.make_record("parser", rows, {
      "config": a.config or "defaults", "domain": config.dpr.domain, "dim": a.dim,
      "tokens": pc.max_tokens, "known_forms": len(texts), "tags": len(tags),
      "hidden": pc.hidden, "similarity_rank": pc.similarity_rank, "steps_per_call": spc,
      "reps": a.reps}, notes=[
      "train: one call of steps_per_call scanned steps (forward, backward, AdamW), p50 of "
      "`reps` calls; per_step_ms = p50 / steps_per_call.",
      "read: the ensemble's mean stance probabilities for `batch` requests (token states "
      "given: the text encoder's time is not included)."])
  common.write_record(record, a.out, a.tag, COLUMNS)


if __name__ == "__main__":
  main()
