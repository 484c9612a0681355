"""Rule (a) on MIND: the MIND requests of the project against MIND's titles (news headlines).

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=. python reports/titles_cpu_2026-12-07/finds_mind.py MIND_RUN
"""
import sys

from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.serve.recommender import Recommender

rec = Recommender.load(sys.argv[1])
sets = {
    "everyday (mind)": [r.text for r in everyday.load("mind")],
    "generator train (mind, seed 0, 6000)": [r.text for r in generator.generate("mind", "train", 6000, 0)],
    "generator held-out (mind, seeds 0, 1)": [r.text for s in (0, 1) for r in generator.generate("mind", "heldout", 1000, s)],
    "templates (mind)": [p.text for p in templates.all_prompts("mind")],
}
print(f"MIND titles: {sum(bool(t) for t in rec.data.item_titles)}")
for name, texts in sets.items():
  hits = [(t, m) for t in texts if (m := rec._titles.find(t))]
  print(f"  {name}: {len(hits)} of {len(texts)}" + "".join(
      f"\n    {t!r} -> {rec.data.item_titles[m.items[0] - 1]}" for t, m in hits[:10]))
