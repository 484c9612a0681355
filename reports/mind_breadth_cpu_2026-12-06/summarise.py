"""Means over seeds of the figures `launch/parser_validation.py` printed (reports/experiments.md,
2026-12-06 session 17).

    python reports/mind_breadth_cpu_2026-12-06/summarise.py DIR ARM [ARM ...]   # DIR/pv_ARM_seedS.log
"""

import pathlib
import re
import sys

ROWS = (("generator held-out", "own held-out split"), ("templates held-out", "held-out templates"),
        ("mind_compound.tsv", "A: compound requests"), ("mind_heldout_current.tsv", "B: current held-out split"))


def read(path: pathlib.Path) -> dict:
  out = {}
  for line in path.read_text(encoding="utf-8").splitlines():
    m = re.search(r"(\d+) requests, accuracy ([\d.]+), inverted ([\d.]+)", line)
    if m:
      for key, name in ROWS:
        if line.startswith(key) or (line.startswith("file ") and key in line):
          out[name] = (float(m.group(2)), float(m.group(3)))
  return out


def main(folder: str, arms: list[str]) -> None:
  for arm in arms:
    runs = [read(p) for p in sorted(pathlib.Path(folder).glob(f"pv_{arm}_seed*.log"))]
    print(f"{arm} ({len(runs)} seeds)")
    for _, name in ROWS:
      right = [r[name][0] for r in runs]
      inv = [r[name][1] for r in runs]
      print(f"  {name:28s} right {' / '.join(f'{x:.3f}' for x in right)}  mean {sum(right) / len(right):.4f}"
            f"   inverted mean {sum(inv) / len(inv):.4f}")


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2:])
