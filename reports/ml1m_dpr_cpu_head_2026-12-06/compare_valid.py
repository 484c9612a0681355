"""Validation rows of two evaluated runs against a rule written before their readings.

    python compare_valid.py BASE_RUN CAND_RUN [MIN_GAIN]

MIN_GAIN is the rise the parser's generator held-out split must make: 0.02 (the default) for
the mix rule of reports/experiments.md, 2026-12-06 session 13; 0.03 for the 18,000-request rule
of session 14 (reports/parser_r18k_cpu_2026-12-06/)."""
import json, sys

def load(run):
  s = json.load(open(f"{run}/results_steering.json"))["results"]["valid"]
  p = json.load(open(f"{run}/results_parser.json"))
  return s, p

base, cand = (load(r) for r in sys.argv[1:3])
gain = float(sys.argv[3]) if len(sys.argv) > 3 else 0.02
(sb, pb), (sc, pc) = base, cand
ok = True
def row(name, b, c, passed):
  global ok
  ok &= passed
  print(f"{name:40s} {b:8.4f} {c:8.4f} {c - b:+8.4f} {'ok' if passed else 'FAIL'}")
g = ("generator held-out", "templates held-out")
row(f"parser generator held-out (>= +{gain})", pb[g[0]]["accuracy"], pc[g[0]]["accuracy"],
    pc[g[0]]["accuracy"] - pb[g[0]]["accuracy"] >= gain - 1e-9)
row("parser templates held-out (>= -0.01)", pb[g[1]]["accuracy"], pc[g[1]]["accuracy"],
    pc[g[1]]["accuracy"] - pb[g[1]]["accuracy"] >= -0.01)
for t in ("SEQ", "POS", "NEG", "NUANCED", "COMBINED"):
  b, c = sb[t]["methods"]["dpr"]["ndcg@10"], sc[t]["methods"]["dpr"]["ndcg@10"]
  row(f"valid {t} DPR NDCG@10 (>= -1%)", b, c, c >= 0.99 * b)
b, c = sb["POLARITY"]["methods"]["dpr"]["polarity"], sc["POLARITY"]["methods"]["dpr"]["polarity"]
row("valid POLARITY strict (>= -0.005)", b, c, c - b >= -0.005)
b, c = sb["COMBINED"]["split_ok"], sc["COMBINED"]["split_ok"]
row("valid COMBINED read in two parts (>= -0.01)", b, c, c - b >= -0.01)
print("qualifies" if ok else "does not qualify")
