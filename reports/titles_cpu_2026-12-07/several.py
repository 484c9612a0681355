"""Rule (b) for several titles: the set several.jsonl (rules (a), (c): rerun finds.py, bare.py).

    DPR_DATA_DIR=... PYTHONPATH=. python reports/titles_cpu_2026-12-07/several.py RUN
"""
import json
import sys

from dpr_jax.serve.recommender import Recommender

rec = Recommender.load(sys.argv[1])
titles = rec.data.item_titles
right = wrong = 0
for line in open("dpr_jax/prompts/titles/several.jsonl"):
  r = json.loads(line)
  m = rec._titles.find(r["text"])
  got = [titles[i - 1] for i in m.items] if m else []
  ok = got == r["titles"]
  right += ok
  wrong += any(g not in r["titles"] for g in got)
  print(f"  {r['id']}\t{'ok ' if ok else 'NO '}\t{r['text']!r}\t-> {got}\t(rest: {m.rest if m else ''!r})")
print(f"every title found in order: {right} of 10 (8 + 2 controls); requests with a wrong item: {wrong}")
