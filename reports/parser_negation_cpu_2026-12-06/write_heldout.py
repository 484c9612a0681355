"""Writes ML-1M's current generator held-out validation set (the 1,000 requests, seed 1, that
`launch/parser_validation.py ml-1m` scores) as TSVs, so that a parser trained on another grammar
reads the same requests (reports/experiments.md, 2026-12-06 session 18): all of them, and two
reported subsets -- wishes whose construction holds a negation word, avoids whose construction
holds none.

    PYTHONPATH=. python reports/parser_negation_cpu_2026-12-06/write_heldout.py OUT_PREFIX
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from build_candidate import NEGATION  # noqa: E402

from dpr_jax.prompts import generator, templates  # noqa: E402

tags = templates.tags_for("ml-1m")
tags = [t for t in tags if generator.surface_forms("ml-1m", t, "heldout")]
reqs = generator.generate("ml-1m", "heldout", 1000, 1, tags=tags)  # = generated_requests(...)
subsets = {"all": lambda r: True,
           "wish_negword": lambda r: r.kind == "positive" and NEGATION.search(r.construction.lower()),
           "avoid_plain": lambda r: r.kind == "negative" and not NEGATION.search(
               r.construction.lower())}
for name, keep in subsets.items():
  rows = [r for r in reqs if keep(r)]
  path = f"{sys.argv[1]}_{name}.tsv"
  with open(path, "w", encoding="utf-8") as f:
    for r in rows:
      f.write(f"{r.text}\t{','.join(r.want)}\t{','.join(r.avoid)}\n")
  print(f"{len(rows)} requests -> {path}")
