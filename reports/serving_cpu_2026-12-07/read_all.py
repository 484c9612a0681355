"""Every labelled request collection read through ``Recommender.read`` (the serving path, with
every rule of the tree on PYTHONPATH), read right = the parse's want and avoid sets equal the
labels: the everyday set, the generator's held-out split (seeds 0 and 1, 1,000 each) and the
templates (by polarity). Run on two trees to compare what the serving rules change.

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=TREE python reports/serving_cpu_2026-12-07/read_all.py RUN DOMAIN
"""
import sys

from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.serve.recommender import Recommender

rec = Recommender.load(sys.argv[1])
domain = sys.argv[2]
sets = {
    "everyday": [(r.text, r.want, r.avoid, r.kind) for r in everyday.load(domain)],
    "generator held-out": [(r.text, r.want, r.avoid, "") for s in (0, 1)
                           for r in generator.generate(domain, "heldout", 1000, s)],
    "templates (by polarity)": [
        (p.text, list(p.tags) if p.polarity > 0 else [], [] if p.polarity > 0 else list(p.tags),
         p.family) for p in templates.all_prompts(domain)],
}
for name, rows in sets.items():
  right, by_kind = 0, {}
  for text, want, avoid, kind in rows:
    p = rec.read(text).parse
    ok = {t for t, _ in p.want} == set(want) and {t for t, _ in p.avoid} == set(avoid)
    right += ok
    k = by_kind.setdefault(kind, [0, 0])
    k[0] += ok
    k[1] += 1
  kinds = "" if len(by_kind) == 1 else " (" + ", ".join(
      f"{k} {a}/{n}" for k, (a, n) in by_kind.items()) + ")"
  print(f"{domain} {name}: {right} of {len(rows)} read right, {right / len(rows):.3f}{kinds}")
