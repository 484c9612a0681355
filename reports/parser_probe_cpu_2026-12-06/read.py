"""Prints how a trained run reads each prompt of a file (a diagnostic; no choice is made on it)."""
import sys, warnings
warnings.simplefilter("ignore")
from dpr_jax.serve.recommender import Recommender
rec = Recommender.load(sys.argv[1])
for line in open(sys.argv[2]):
  p = line.strip()
  if not p:
    continue
  r = rec.read(p)
  want = "; ".join(f"{t} {c:.2f}" for t, c in r.parse.want)
  avoid = "; ".join(f"{t} {c:.2f}" for t, c in r.parse.avoid)
  print(f"{p!r:50s} want[{want}] avoid[{avoid}]")
