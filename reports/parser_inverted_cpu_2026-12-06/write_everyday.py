"""Writes ML-1M's everyday set (the requests about tags the catalogue has, as stage 2 reads them)
as a TSV for `launch/parser_validation.py ml-1m read=FILE` -- a reported figure, never a choice
(reports/experiments.md, 2026-12-06 session 17).

    PYTHONPATH=. python reports/parser_inverted_cpu_2026-12-06/write_everyday.py OUT.tsv
"""

import sys

from dpr_jax.prompts import everyday, templates

tags = set(templates.tags_for("ml-1m"))
requests = [r for r in everyday.load("ml-1m") if set(r.want + r.avoid) <= tags]
with open(sys.argv[1], "w", encoding="utf-8") as f:
  for r in requests:
    f.write(f"{r.text}\t{','.join(r.want)}\t{','.join(r.avoid)}\n")
print(f"{len(requests)} requests -> {sys.argv[1]}")
