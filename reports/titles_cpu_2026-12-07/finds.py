"""Rules (a) and (b): which requests are read as naming a title.

(a) none of the project's ML-1M requests may be (against ML-1M's titles); (b) the set's.

    DPR_DATA_DIR=... PYTHONPATH=. python reports/titles_cpu_2026-12-07/finds.py RUN
"""
import json
import sys

from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.serve.recommender import Recommender

rec = Recommender.load(sys.argv[1])
find, titles = rec._titles.find, rec.data.item_titles


def read(texts):
  return [(t, m) for t in texts if (m := find(t))]


sets = {
    "everyday (ml-1m)": [r.text for r in everyday.load("ml-1m")],
    "everyday (mind)": [r.text for r in everyday.load("mind")],
    "generator train (ml-1m, seed 0, 6000)": [r.text for r in generator.generate("ml-1m", "train", 6000, 0)],
    "generator held-out (ml-1m, seeds 0, 1)": [r.text for s in (0, 1) for r in generator.generate("ml-1m", "heldout", 1000, s)],
    "templates (ml-1m)": [p.text for p in templates.all_prompts("ml-1m")],
    "thirty hand-typed": [line.strip() for line in open("reports/parser_probe_cpu_2026-12-06/prompts.txt")
                          if line.strip() and not line.startswith("#")],
    "languages set": [json.loads(line)["text"] for line in open("dpr_jax/prompts/languages/requests.jsonl")],
    "symbols set": [json.loads(line)["text"] for line in open("dpr_jax/prompts/symbols/requests.jsonl")],
}
print("(a) the project's requests read as naming an ML-1M title")
for name, texts in sets.items():
  hits = read(texts)
  print(f"  {name}: {len(hits)} of {len(texts)}" + "".join(
      f"\n    {t!r} -> {titles[m.items[0] - 1]}" for t, m in hits[:10]))
print("(b) the set (dpr_jax/prompts/titles/requests.jsonl)")
rows = [json.loads(line) for line in open("dpr_jax/prompts/titles/requests.jsonl")]
right = wrong = missed = ctrl = 0
for r in rows:
  m = find(r["text"])
  got = titles[m.items[0] - 1] if m else None
  if r["title"] is None:
    ctrl += got is not None
    verdict = "ok " if got is None else "NO "
  else:
    right += got == r["title"]
    wrong += got is not None and got != r["title"]
    missed += got is None
    verdict = "ok " if got == r["title"] else "NO "
  print(f"  {r['id']}\t{verdict}\t{r['text']!r}\t-> {got}" + (f"\t(rest: {m.rest!r})" if m else ""))
print(f"titles found right {right} of 24, wrong item {wrong}, not found {missed}; controls read as a title {ctrl} of 8")
