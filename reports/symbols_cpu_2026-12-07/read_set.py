"""Reads `dpr_jax/prompts/symbols/requests.jsonl` with a trained run's serving reader and says,
per request, how it was read and whether that is what was meant (want and avoid sets equal).

    PYTHONPATH=. python reports/symbols_cpu_2026-12-07/read_set.py RUN [SET]
"""
import collections
import json
import sys

from dpr_jax.serve.recommender import Recommender

run = sys.argv[1]
path = sys.argv[2] if len(sys.argv) > 2 else "dpr_jax/prompts/symbols/requests.jsonl"
rows = [json.loads(line) for line in open(path)]
rec = Recommender.load(run)
right = collections.Counter()
total = collections.Counter()
for r in rows:
  reading = rec.read(r["text"])
  parse = reading.parse
  want = {t for t, _ in parse.want} if parse else set()
  avoid = {t for t, _ in parse.avoid} if parse else set()
  ok = want == set(r["want"]) and avoid == set(r["avoid"])
  right[r["kind"]] += ok
  total[r["kind"]] += 1
  said = "; ".join([f"want {t} {p:.2f}" for t, p in parse.want] + [f"avoid {t} {p:.2f}" for t, p
                                                                      in parse.avoid]) or "nothing"
  unsure = ", ".join(t for t, _ in parse.unsure)
  print(f"{r['id']}\t{'ok ' if ok else 'NO '}\t{r['text']}\t{said}" + (f"\t(unsure: {unsure})"
                                                                        if unsure else ""))
print("read right:", {k: f"{right[k]}/{total[k]}" for k in total},
      f"all {sum(right.values())}/{sum(total.values())}")
