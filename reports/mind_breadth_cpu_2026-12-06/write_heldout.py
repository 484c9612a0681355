"""Writes MIND's current generator held-out validation set (the 1,000 requests, seed 1, that
`launch/parser_validation.py mind` scores) as a TSV, so that a parser trained on another grammar
reads the same requests (reports/experiments.md, 2026-12-06 session 17).

    PYTHONPATH=. python reports/mind_breadth_cpu_2026-12-06/write_heldout.py OUT.tsv
"""

import sys

from dpr_jax.prompts import templates
from dpr_jax.train import parser as parser_lib

texts, labels = parser_lib.generated_requests("mind", "heldout", 1000, 1, templates.tags_for("mind"))
with open(sys.argv[1], "w", encoding="utf-8") as f:
  for text, (want, avoid) in zip(texts, labels):
    f.write(f"{text}\t{','.join(want)}\t{','.join(avoid)}\n")
print(f"{len(texts)} requests -> {sys.argv[1]}")
