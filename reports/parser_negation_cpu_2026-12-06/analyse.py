"""Reads calibrate.py's files: the share of requests read as their opposite, and how well a
"contested" stance -- the opposite stance's probability at least TAU -- singles them out.

    python reports/parser_negation_cpu_2026-12-06/analyse.py FILE.jsonl [FILE.jsonl ...]
"""

import json
import sys

import numpy as np

TAUS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
OPP = {"want": 2, "avoid": 1}


def load(path):
  return [json.loads(line) for line in open(path, encoding="utf-8")]


def summary(rows, label):
  for name in ("B", "templates"):
    sub = [r for r in rows if r["set"] == name]
    inv = np.array([any(s["verdict"] == "opposite" for s in r["stances"]) for r in sub])
    right = np.array([not r["missed"] and all(s["verdict"] == "right" for s in r["stances"])
                      for r in sub])
    opp_p = [s["p"][OPP[s["stance"]]] for r in sub for s in r["stances"]
             if s["verdict"] == "opposite"]
    ok_p = [s["p"][OPP[s["stance"]]] for r in sub for s in r["stances"] if s["verdict"] == "right"]
    print(f"{label} {name}: {len(sub)} requests, right {right.mean():.3f}, opposite "
          f"{inv.mean():.3f}; opposite stance's p of the other polarity: inverted stances median "
          f"{np.median(opp_p) if opp_p else float('nan'):.3f}, right ones "
          f"{np.median(ok_p):.3f}")
    for tau in TAUS:
      flag = np.array([any(s["p"][OPP[s["stance"]]] >= tau for s in r["stances"]) for r in sub])
      print(f"   tau {tau:.2f}: flagged {flag.mean():.3f} of requests; of those read as their "
            f"opposite {flag[inv].mean() if inv.any() else float('nan'):.3f}, of those read right "
            f"{flag[right].mean():.3f}; opposite and not flagged {(inv & ~flag).mean():.3f}")


for path in sys.argv[1:]:
  summary(load(path), path.rsplit("/", 1)[-1])
