"""Baseline vs variant on validation users: DPR NDCG@10 per task, POLARITY strict, COMBINED split_ok.
python cmp_val.py BASE_RUN VARIANT_RUN"""
import json, sys
def load(p): return json.load(open(p + "/results_steering.json"))["results"]["valid"]
a, b = load(sys.argv[1]), load(sys.argv[2])
ok = True
for t in ("SEQ", "POS", "NEG", "NUANCED", "COMBINED"):
  x, y = a[t]["methods"]["dpr"]["ndcg@10"], b[t]["methods"]["dpr"]["ndcg@10"]
  rel = y / x - 1
  ok &= rel >= -0.01
  extra = ""
  if t == "NUANCED":
    extra = f"  TagPrecision@10 {a[t]['methods']['dpr']['tag_precision@10']:.3f} -> {b[t]['methods']['dpr']['tag_precision@10']:.3f}"
  if t == "COMBINED":
    extra = f"  Satisfied@10 {a[t]['methods']['dpr']['satisfied@10']:.3f} -> {b[t]['methods']['dpr']['satisfied@10']:.3f}"
  print(f"{t:9s} DPR NDCG@10 {x:.4f} -> {y:.4f} ({rel:+.1%}){extra}")
pa, pb = a["POLARITY"]["methods"]["dpr"]["polarity"], b["POLARITY"]["methods"]["dpr"]["polarity"]
ok &= pb >= pa - 0.005
print(f"POLARITY strict {pa:.3f} -> {pb:.3f} ({pb - pa:+.3f})")
sa, sb = a["COMBINED"]["split_ok"], b["COMBINED"]["split_ok"]
print(f"COMBINED split_ok {sa:.3f} -> {sb:.3f} ({sb - sa:+.3f})  cond3 {'met' if sb - sa >= 0.01 else 'NOT met'}")
print("cond4", "met" if ok else "NOT met")
