"""Sparse MoE dispatch: dense (every expert on every example) vs grouped (sorted + ragged_dot).

  python -m dpr_jax.bench moe [--config ...] [--experts 4 8 16 32 64] [--batches 512 4096]
                              [--top-k 1] [--reps 5]

The DPR head's expert bank (``dpr_jax.models.moe.SparseMoE``) at the head's shapes: input
x = [h, a, h*a] (3d), hidden ``dpr.expert_hidden``, output d + tags; routes from the real
``Router`` on random inputs. For each expert count E and batch B, both dispatch paths are
timed forward and forward+backward (the stage-3 training use), median of ``--reps`` after a
warm-up, and their compiled temporary memory read. ``useful_gflop`` counts the B*K chosen
expert evaluations; the dense path executes B*E of them.
"""

from __future__ import annotations

import argparse
import statistics

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax.bench import common, flops
from dpr_jax.models.moe import Router, SparseMoE

COLUMNS = ("E", "K", "B", "pass", "dispatch", "p50_ms", "examples_per_s", "useful_gflop",
           "executed_gflop", "temp_mib", "speedup_vs_dense")


def moe_functions(num_experts: int, top_k: int, din: int, hidden: int, dout: int, batch: int,
                  seed: int = 0):
  """({dispatch: (forward fn, forward+backward fn)}, params, x, route-input) at these shapes.

  Both paths share one set of parameters and one routing, so their outputs must agree.
  """
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((batch, din)), jnp.float32)
  r_in = jnp.asarray(rng.standard_normal((batch, din)), jnp.float32)
  router = Router(num_experts, top_k)
  moe = SparseMoE(num_experts, top_k, hidden, dout)
  k_r, k_m = jax.random.split(jax.random.key(seed))

  def init():
    r_params = router.init({"params": k_r}, r_in)["params"]
    route = router.apply({"params": r_params}, r_in)
    return {"router": r_params, "moe": moe.init({"params": k_m}, x, route)["params"]}

  params = nn.unbox(jax.jit(init)())
  fns = {}
  for dispatch in ("dense", "grouped"):
    m = moe.clone(dispatch=dispatch)

    def forward(p, x, r_in, m=m):
      route = router.apply({"params": p["router"]}, r_in)
      return m.apply({"params": p["moe"]}, x, route)  # [B, Dout]

    def train(p, x, r_in, forward=forward):
      loss = lambda p, x: jnp.mean(jnp.square(forward(p, x, r_in)))
      return jax.grad(loss, argnums=(0, 1))(p, x)

    fns[dispatch] = (jax.jit(forward), jax.jit(train))
  return fns, params, x, r_in


def bench_case(num_experts: int, top_k: int, batch: int, din: int, hidden: int, dout: int,
               reps: int) -> list[dict]:
  fns, params, x, r_in = moe_functions(num_experts, top_k, din, hidden, dout, batch)
  rows = []
  outputs = {}
  for pass_index, pass_name in enumerate(("forward", "fwd+bwd")):
    base = None
    for dispatch in ("dense", "grouped"):
      fn = fns[dispatch][pass_index]
      compiled, _ = common.compile_timed(fn, params, x, r_in)
      if pass_index == 0:
        outputs[dispatch] = np.asarray(compiled(params, x, r_in))
      t = statistics.median(common.time_calls(lambda c=compiled: c(params, x, r_in), reps))
      base = t if dispatch == "dense" else base
      run = num_experts if dispatch == "dense" else top_k
      mult = 1.0 if pass_index == 0 else 3.0
      mem = common.memory_stats(compiled) or {}
      rows.append({"E": num_experts, "K": top_k, "B": batch, "pass": pass_name,
                   "dispatch": dispatch, "p50_ms": t * 1e3, "examples_per_s": batch / t,
                   "useful_gflop": mult * flops.moe_forward(batch, din, hidden, dout, top_k) / 1e9,
                   "executed_gflop": mult * flops.moe_forward(batch, din, hidden, dout, run) / 1e9,
                   "temp_mib": mem.get("temp_mib"), "speedup_vs_dense": base / t})
  diff = float(np.max(np.abs(outputs["dense"] - outputs["grouped"])))
  if diff > 1e-3:
    raise AssertionError(f"dense and grouped dispatch disagree by {diff} (E={num_experts})")
  return rows


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench moe", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default=None, help="preset for d, expert_hidden, top_k")
  positive = common.positive_int  # counts and sizes: >= 1
  p.add_argument("--d", type=positive, default=None)
  p.add_argument("--experts", nargs="+", type=positive, default=[4, 8, 16, 32, 64])
  p.add_argument("--batches", nargs="+", type=positive, default=[512, 4096])
  p.add_argument("--top-k", type=positive, default=None, help="K (default: the config's dpr.top_k)")
  p.add_argument("--reps", type=positive, default=5)
  common.add_common_args(p)
  a = p.parse_args(argv)
  config = common.load_config(a.config, model__embed_dim=a.d, dpr__top_k=a.top_k)
  d, hidden, k = config.model.embed_dim, config.dpr.expert_hidden, config.dpr.top_k
  din, dout = 3 * d, d + common.ML1M_TAGS
  rows = []

  def make():
    return common.make_record("moe", rows, {
        "config": a.config or "defaults", "din": din, "hidden": hidden, "dout": dout,
        "top_k": k, "reps": a.reps}, notes=[
        "Forward = router + experts; fwd+bwd = gradients of a squared-output loss w.r.t. all "
        "parameters and x. p50 of `reps` calls after a warm-up; speedup_vs_dense = dense p50 / "
        "this p50 for the same E, B and pass.",
        "Both paths checked to agree (max |dense - grouped| <= 1e-3) on every case.",
        "useful_gflop: the B*K chosen expert evaluations (x3 for fwd+bwd); executed_gflop: what "
        "the algorithm asks for (dense: B*E evaluations, grouped: B*K); how much XLA executes for "
        "ragged_dot depends on the backend's lowering (a grouped kernel on GPU/TPU)."])
  for batch in a.batches:
    for e in a.experts:
      rows += bench_case(e, k, batch, din, hidden, dout, a.reps)
      print({r["pass"] + "/" + r["dispatch"]: round(r["p50_ms"], 2) for r in rows[-4:]},
            f"E={e} B={batch}", flush=True)
      common.write_record(make(), a.out, a.tag, COLUMNS, quiet=True)  # partial
  common.write_record(make(), a.out, a.tag, COLUMNS)


if __name__ == "__main__":
  main()
