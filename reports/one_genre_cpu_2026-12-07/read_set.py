"""Rules (a) and (b) of reading one genre typed alone: the set read through the Recommender (the
answer's parse), per request whether it is what was meant. Runs on any version of the code.

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=. python reports/one_genre_cpu_2026-12-07/read_set.py RUN DOMAIN
"""
import collections
import json
import sys

from dpr_jax.serve.recommender import Recommender

rec = Recommender.load(sys.argv[1])
rows = [json.loads(line) for line in open("dpr_jax/prompts/one_genre/requests.jsonl")]
rows = [r for r in rows if r["domain"] == sys.argv[2]]
right, total = collections.Counter(), collections.Counter()
for r in rows:
  p = rec.read(r["text"]).parse
  ok = {t for t, _ in p.want} == set(r["want"]) and {t for t, _ in p.avoid} == set(r["avoid"])
  right[r["kind"]] += ok
  total[r["kind"]] += 1
  print(f"{r['id']}\t{'ok ' if ok else 'NO '}\t{r['text']}\t{p.describe()}")
print("read right:", {k: f"{right[k]}/{total[k]}" for k in total})
