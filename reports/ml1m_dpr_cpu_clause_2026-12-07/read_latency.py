import sys, time, warnings, statistics
warnings.simplefilter("ignore")
from dpr_jax.serve.recommender import Recommender
runs = {"clause_cue": Recommender.load("/work/s22/probe"), "default_before": Recommender.load("/work/s19/sas/runs/sas")}
prompts = [l.strip() for l in open("/work/main/reports/parser_probe_cpu_2026-12-06/prompts.txt") if l.strip()]
for r in runs.values():
  for p in prompts: r.read("warm " + p)  # warm
times = {k: [] for k in runs}
for rep in range(5):
  for k, r in runs.items():
    for p in prompts:
      q = ["", "please ", "hey ", "ok ", "so "][rep] + p + ["", " tonight", " now", " pls", " thanks"][rep]; t = time.perf_counter(); r.read(q); times[k].append((time.perf_counter() - t) * 1e3)
for k, v in times.items():
  print(f"{k}: median {statistics.median(v):.2f} ms per read ({len(v)} reads)")
print(f"ratio {statistics.median(times['clause_cue']) / statistics.median(times['default_before']):.3f}")
