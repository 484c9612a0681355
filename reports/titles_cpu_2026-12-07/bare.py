"""Rules (a) and (b) for a title alone: (a) as finds.py (rerun it), (b) the set bare.jsonl.

    DPR_DATA_DIR=... PYTHONPATH=. python reports/titles_cpu_2026-12-07/bare.py RUN
"""
import json
import sys

from dpr_jax.serve.recommender import Recommender

rec = Recommender.load(sys.argv[1])
titles = rec.data.item_titles
right = wrong = missed = ctrl = 0
for line in open("dpr_jax/prompts/titles/bare.jsonl"):
  r = json.loads(line)
  m = rec._titles.find(r["text"])
  got = titles[m.items[0] - 1] if m else None
  if r["title"] is None:
    ctrl += got is not None
  else:
    right += got == r["title"]
    wrong += got is not None and got != r["title"]
    missed += got is None
  ok = got == r["title"]
  print(f"  {r['id']}\t{'ok ' if ok else 'NO '}\t{r['text']!r}\t-> {got}")
print(f"titles found right {right} of 12, wrong item {wrong}, not found {missed}; controls read as a title {ctrl} of 10")
