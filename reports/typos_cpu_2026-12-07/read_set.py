"""Rule (a) of reading typos in a genre's word: the set read through the Recommender (the
answer's parse and notes), per request whether it is what was meant. Runs on any version of the
code (the set's path is given, so a tree from before the set can read it).

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=TREE python reports/typos_cpu_2026-12-07/read_set.py RUN DOMAIN SET
"""
import collections
import json
import sys

from dpr_jax.serve.recommender import Recommender

rec = Recommender.load(sys.argv[1])
rows = [json.loads(line) for line in open(sys.argv[3])]
rows = [r for r in rows if r["domain"] == sys.argv[2]]
right, total = collections.Counter(), collections.Counter()
for r in rows:
  reading = rec.read(r["text"])
  p = reading.parse
  ok = {t for t, _ in p.want} == set(r["want"]) and {t for t, _ in p.avoid} == set(r["avoid"])
  if r["kind"] != "ctl":
    right[r["kind"]] += ok
    total[r["kind"]] += 1
  mark = "ctl" if r["kind"] == "ctl" else "ok " if ok else "NO "
  print(f"{r['id']}\t{mark}\t{r['text']}\t{p.describe()}\t{' | '.join(reading.notes)}")
print("read right:", {k: f"{right[k]}/{total[k]}" for k in total},
      f"all {sum(right.values())}/{sum(total.values())}")
