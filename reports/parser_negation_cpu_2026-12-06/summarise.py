"""The rule's table (reports/experiments.md, 2026-12-06 session 18) from the readings' logs.

    python reports/parser_negation_cpu_2026-12-06/summarise.py [ARM]

ARM: ``cand`` (the grammar candidate, default) or ``nocue`` (``parser.negation_cue=false``).
"""

import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROWS = {"(a) B read as its opposite (<= -0.03)": ("heldout_all.tsv", "inverted"),
        "(b) B read right (>= -0.01)": ("heldout_all.tsv", "accuracy"),
        "(c) held-out templates read right (>= -0.02)": ("templates held-out", "accuracy"),
        "B's wishes holding a negation word, opposite (reported)": ("heldout_wish_negword.tsv",
                                                                    "inverted"),
        "B's avoids holding none, opposite (reported)": ("heldout_avoid_plain.tsv", "inverted"),
        "its own held-out split, right (reported)": ("generator held-out", "accuracy"),
        "its own held-out split, opposite (reported)": ("generator held-out", "inverted")}


def reading(arm: str, seed: int, where: str, what: str) -> float:
  text = (HERE / f"pv_{arm}_m1_seed{seed}.log").read_text(encoding="utf-8")
  line = next(l for l in text.splitlines() if where in l and "requests, accuracy" in l)
  return float(re.search(what + r" ([0-9.]+)", line).group(1))


ARM = sys.argv[1] if len(sys.argv) > 1 else "cand"
print(f"| validation row | current, seeds 0 / 1 / 2, mean | {ARM} | change of the mean |")
print("|---|---|---|---|")
for name, (where, what) in ROWS.items():
  cells = []
  for arm in ("base", ARM):
    v = [reading(arm, s, where, what) for s in range(3)]
    cells.append((" / ".join(f"{x:.3f}" for x in v) + f", {sum(v) / 3:.3f}", sum(v) / 3))
  print(f"| {name} | {cells[0][0]} | {cells[1][0]} | {cells[1][1] - cells[0][1]:+.3f} |")
