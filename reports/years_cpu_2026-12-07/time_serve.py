"""Median seconds of Recommender.recommend_many for 200 users asking one request (cached reading),
7 repeats after a warm-up; prints the code's tree."""
import statistics, sys, time
import numpy as np
from dpr_jax.serve.recommender import Recommender, Request
import dpr_jax
rec = Recommender.load(sys.argv[1])
d = rec.data
users = np.random.default_rng(0).choice(len(d.user_ids), 200, replace=False)
reqs = [Request(user=str(d.user_ids[u]), prompt="a comedy, but no romance") for u in users]
plain = [Request(user=str(d.user_ids[u])) for u in users]
for r in (reqs, plain):
  rec.recommend_many(r)
out = {}
for name, r in (("prompted", reqs), ("unprompted", plain)):
  ts = []
  for _ in range(7):
    t = time.perf_counter(); rec.recommend_many(r); ts.append(time.perf_counter() - t)
  out[name] = statistics.median(ts)
print(dpr_jax.__file__, {k: round(v, 4) for k, v in out.items()})
