"""Session 21's two-draw rule for parser.clause_cue (reports/experiments.md): the mean of two draws of
each parser, validation only. python two_draw.py"""
import json
R = "/work/s21/pv/runs"
runs = {  # (variant, draw, backbone) -> run folder
    ("default", 0, "SASRec"): "/work/s19/sas/runs/sas", ("default", 0, "GRU4Rec"): "/work/s19/gru/runs/gru",
    ("clause", 0, "SASRec"): f"{R}/sas_clause", ("clause", 0, "GRU4Rec"): f"{R}/gru_clause",
    ("default", 10, "SASRec"): f"{R}/sas_default_s10", ("default", 10, "GRU4Rec"): f"{R}/gru_default_s10",
    ("clause", 10, "SASRec"): f"{R}/sas_clause_s10", ("clause", 10, "GRU4Rec"): f"{R}/gru_clause_s10"}
TASKS = ("SEQ", "POS", "NEG", "NUANCED", "COMBINED")


def fig(path):
  p = json.load(open(path + "/results_parser.json"))
  v = json.load(open(path + "/results_steering.json"))["results"]["valid"]
  out = {"gen_right": p["generator held-out"]["accuracy"], "gen_inv": p["generator held-out"]["inverted"],
         "templates": p["templates held-out"]["accuracy"], "split": v["COMBINED"]["split_ok"],
         "polarity": v["POLARITY"]["methods"]["dpr"]["polarity"],
         "nuanced_tp": v["NUANCED"]["methods"]["dpr"]["tag_precision@10"],
         "combined_sat": v["COMBINED"]["methods"]["dpr"]["satisfied@10"]}
  out.update({t: v[t]["methods"]["dpr"]["ndcg@10"] for t in TASKS})
  return out


F = {k: fig(p) for k, p in runs.items()}
mean = lambda var, bb, key: (F[(var, 0, bb)][key] + F[(var, 10, bb)][key]) / 2
keys = ["gen_right", "gen_inv", "templates", "split", "polarity", "nuanced_tp", "combined_sat"] + list(TASKS)
for bb in ("SASRec", "GRU4Rec"):
  print(f"== {bb} (validation users)")
  print(f"{'':14s}" + "".join(f"{k:>13s}" for k in ("default s0", "default s10", "clause s0", "clause s10", "def mean", "clause mean")))
  for k in keys:
    vals = [F[(v, d, bb)][k] for v in ("default", "clause") for d in (0, 10)]
    print(f"{k:14s}" + "".join(f"{x:13.4f}" for x in vals) + f"{mean('default', bb, k):13.4f}{mean('clause', bb, k):13.4f}")
bb0 = "SASRec"  # stage 2's parsers do not read the backbone: the parser figures are the same in both
c1 = (mean("clause", bb0, "gen_right") >= mean("default", bb0, "gen_right") - 0.005
      and mean("clause", bb0, "gen_inv") <= mean("default", bb0, "gen_inv") + 0.005)
c2 = mean("clause", bb0, "templates") >= mean("default", bb0, "templates") - 0.01
c3 = all(mean("clause", bb, "split") - mean("default", bb, "split") >= 0.01 for bb in ("SASRec", "GRU4Rec"))
c4 = all(mean("clause", bb, t) / mean("default", bb, t) - 1 >= -0.01 for bb in ("SASRec", "GRU4Rec") for t in TASKS) and all(
    mean("clause", bb, "polarity") >= mean("default", bb, "polarity") - 0.005 for bb in ("SASRec", "GRU4Rec"))
for bb in ("SASRec", "GRU4Rec"):
  print(bb, "DPR NDCG@10 change of the means:", {t: f"{mean('clause', bb, t) / mean('default', bb, t) - 1:+.1%}" for t in TASKS})
print(f"(1) {c1}  (2) {c2}  (3) {c3}  (4) {c4}  ->", "ADOPT" if c1 and c2 and c3 and c4 else "stays False")
