"""The first version's rule (c), request by request: each generated request (training, seed 0,
6,000; held-out, seeds 0 and 1) whose reading the change turned from wrong to right (FIXED) or
right to wrong (BROKE), with both readings (`changed_readings_ml1m.txt`). It was run with the
first version in the chain (apply `avoid_first_v1.diff` in reverse to dpr_jax/serve/avoid_first.py
and call ``wish_first`` on every text, as v1 did, to run it again); at later commits it measures
the landed version.

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=. python reports/avoid_first_cpu_2026-12-07/v1/changed_readings.py RUN ml-1m
"""
import sys
from unittest import mock
from dpr_jax.prompts import generator
from dpr_jax.serve import avoid_first
from dpr_jax.serve.recommender import Recommender
rec = Recommender.load(sys.argv[1]); dom = sys.argv[2]
wf = avoid_first.wish_first
def parse(t, on):
  rec._read_cache.clear()
  if on: return rec.read(t).parse
  with mock.patch("dpr_jax.serve.avoid_first.wish_first", lambda x: x):
    return rec.read(t).parse
def right(p, w, a): return {t for t,_ in p.want}==set(w) and {t for t,_ in p.avoid}==set(a)
for name, rows in (("train", generator.generate(dom, "train", 6000, 0)),
                   ("heldout", [r for s in (0,1) for r in generator.generate(dom, "heldout", 1000, s)])):
  for r in rows:
    if wf(r.text) == r.text: continue
    b, a = parse(r.text, False), parse(r.text, True)
    rb, ra = right(b, r.want, r.avoid), right(a, r.want, r.avoid)
    if rb != ra:
      print(name, "FIXED" if ra else "BROKE", repr(r.text), "|", b.describe(), "->", a.describe())
