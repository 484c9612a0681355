"""DPR's template and everyday rows read by the parser (the default) and by the earlier rules
(`--config.dpr.reader=rules`), test users, mean of the stage-3 seeds, and their ratio -- issue
16's "no regression on the template tasks" (reports/experiments.md, 2026-12-07 session 19).

    python reports/ml1m_dpr_cpu_rerun_2026-12-07/parser_vs_rules.py PARSER_RUN[,...] RULES_RUN[,...]
"""

import json
import sys

ROWS = [("POS", "dpr", "ndcg@10"), ("POS", "dpr", "tag_precision@10"), ("POS", "dpr+filter", "ndcg@10"),
        ("NEG", "dpr", "ndcg@10"), ("NEG", "dpr", "violation@10"), ("NEG", "dpr+filter", "ndcg@10"),
        ("NUANCED", "dpr", "ndcg@10"), ("NUANCED", "dpr", "tag_precision@10"),
        ("NUANCED", "dpr+filter", "ndcg@10"),
        ("COMBINED", "dpr", "ndcg@10"), ("COMBINED", "dpr", "satisfied@10"),
        ("COMBINED", "dpr+filter", "ndcg@10"), ("POLARITY", "dpr", "polarity"),
        ("EVERYDAY+", "dpr", "tag_precision@10"), ("EVERYDAY-", "dpr", "violation@10"),
        ("EVERYDAY+-", "dpr", "satisfied@10"), ("EVERYDAY?", "dpr", "changed@10")]


def mean(runs, task, method, metric):
  vals = []
  for run in runs:
    results = json.load(open(f"{run}/results_steering.json", encoding="utf-8"))["results"]
    vals.append(results[task]["methods"][method][metric])
  return sum(vals) / len(vals)


def main(parser_runs, rules_runs):
  parser_runs, rules_runs = parser_runs.split(","), rules_runs.split(",")
  print(f"| task, method, metric (test, mean of {len(parser_runs)} seeds) | parser | rules | ratio |")
  print("|---|---|---|---|")
  for task, method, metric in ROWS:
    a, b = mean(parser_runs, task, method, metric), mean(rules_runs, task, method, metric)
    ratio = f"{a / b:.3f}" if b else "-"
    print(f"| {task} {method} {metric} | {a:.4f} | {b:.4f} | {ratio} |")


if __name__ == "__main__":
  main(*sys.argv[1:])
