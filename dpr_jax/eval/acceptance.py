"""The issues' acceptance checks, read from finished runs' results files.

    python -m dpr_jax.eval.acceptance SASRec=runs/ml1m_sasrec GRU4Rec=runs/ml1m_gru4rec
    python -m dpr_jax.eval.acceptance SASRec=runs/seed0,runs/seed1,runs/seed2   # seeds

Prints one Markdown table: a row per check (its target in the first cell), a column per run,
each cell the figure, ✓ or ✗ against the target, and in brackets the figure the check names
beside it (the selection bound, POLARITY loose, the parser's figure per family); the last row
counts each column's ✓. A column of
several run directories (seeds) shows the checks on the mean of every figure over the runs and
the range of the cell's leading figure (`seeds lo-hi`). It reads
``results_steering.json`` (test users, primary rows: the backbone DPR ranks with) and
``results_parser.json`` of each run directory and computes nothing else, so a table pasted into
the README is the files' own verdict and holds wherever the run's command is rerun.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import sys
from typing import Callable

# Stage 1 quality the protocol asks of each backbone (docs/protocol.md).
BACKBONE_TARGET = {"sasrec": 0.18, "gru4rec": 0.175}


@dataclasses.dataclass(frozen=True)
class Run:
  """One run's results: ``steering`` (test tasks, top level of results_steering.json),
  ``parser`` (results_parser.json, may be empty) and the backbone's name."""
  steering: dict
  parser: dict
  model: str

  def m(self, task: str, method: str, metric: str) -> float:
    return float(self.steering[task]["methods"][method][metric])

  @staticmethod
  def mean(runs: list["Run"]) -> "Run":
    """A run whose every figure is the mean over ``runs`` (figures all of them have)."""
    return Run(_mean([r.steering for r in runs]), _mean([r.parser for r in runs]),
               runs[0].model)


def _mean(trees: list):
  """Numbers averaged leaf by leaf; dict keys kept where every tree has them; the rest as in
  the first tree."""
  first = trees[0]
  if isinstance(first, dict):
    keys = [k for k in first if all(isinstance(t, dict) and k in t for t in trees)]
    return {k: _mean([t[k] for t in trees]) for k in keys}
  if isinstance(first, (int, float)) and not isinstance(first, bool) and all(
      isinstance(t, (int, float)) for t in trees):
    return sum(trees) / len(trees)
  return first


@dataclasses.dataclass(frozen=True)
class Check:
  """A row: ``label`` names the target; ``cell(run)`` returns (figure, met, note)."""
  label: str
  cell: Callable[[Run], tuple[str, bool, str]]


def _ratio(a: float, b: float) -> float:
  return a / b if b else float("nan")


def _seq(run):
  dpr, base = run.m("SEQ", "dpr", "ndcg@10"), run.m("SEQ", "backbone", "ndcg@10")
  return f"{dpr:.4f} vs {base:.4f}", abs(dpr - base) <= 0.01 * base, ""


def _backbone(run):
  base = run.m("SEQ", "backbone", "ndcg@10")
  return f"{base:.4f}", base >= BACKBONE_TARGET.get(run.model, float("inf")), ""


def _vs(task, metric="ndcg@10", method="dpr", factor=1.0, note=None):
  def cell(run):
    a, f = run.m(task, method, metric), run.m(task, "filter", metric)
    if factor == 1.0:
      return f"{a:.4f} vs {f:.4f}", a >= f, note(run) if note else ""
    return f"{_ratio(a, f):.3f} ×", a >= factor * f, note(run) if note else ""
  return cell


def _level(task, metric, target, below=False, digits=3, method="dpr", note=None):
  def cell(run):
    v = run.m(task, method, metric)
    return f"{v:.{digits}f}", v <= target if below else v >= target, note(run) if note else ""
  return cell


def _parser(name, target, families=False):
  def cell(run):
    entry = run.parser.get(name)
    if not entry:
      return "-", False, "not in results_parser.json"
    v = float(entry["accuracy"])
    note = ""
    if families:
      note = ", ".join(f"{short} {float(entry[k]):.2f}" for k, short in
                       (("positive", "pos"), ("negative", "neg"), ("combined", "comb"),
                        ("vague", "vague")) if k in entry)
    if "inverted" in entry:  # results files written since 2026-12-06 (session 17)
      note = "; ".join(filter(None, (note, f"read as the opposite {float(entry['inverted']):.3f}")))
    return f"{v:.3f}", v >= target, note
  return cell


CHECKS = (
    Check("SEQ: DPR within 1% of its backbone", _seq),
    Check("backbone NDCG@10 ≥ 0.18 (SASRec) / 0.175 (GRU4Rec)", _backbone),
    Check("POS: DPR ≥ filter", _vs("POS")),
    Check("POS: DPR + filter ≥ 1.10 × filter (selection_bound)",
          _vs("POS", method="dpr+filter", factor=1.10,
              note=lambda r: f"{_ratio(r.m('POS', 'selection_bound', 'ndcg@10'), r.m('POS', 'filter', 'ndcg@10')):.3f} ×")),
    Check("NEG: DPR + filter ≥ filter", _vs("NEG", method="dpr+filter")),
    Check("NEG: DPR Violation@10 ≤ 0.01", _level("NEG", "violation@10", 0.01, below=True,
                                                 digits=4)),
    Check("NUANCED: DPR + filter ≥ filter", _vs("NUANCED", method="dpr+filter")),
    Check("NUANCED: DPR TagPrecision@10 ≥ 0.70", _level("NUANCED", "tag_precision@10", 0.70)),
    Check("COMBINED: DPR + filter ≥ 1.05 × filter",
          _vs("COMBINED", method="dpr+filter", factor=1.05)),
    Check("COMBINED: DPR Satisfied@10 ≥ 0.95",
          _level("COMBINED", "satisfied@10", 0.95,
                 note=lambda r: (f"read as 2 parts: {r.steering['COMBINED']['split_ok']:.3f}"
                                 if "split_ok" in r.steering["COMBINED"] else ""))),
    Check("POLARITY (strict) ≥ 0.92",
          _level("POLARITY", "polarity", 0.92,
                 note=lambda r: f"loose {r.m('POLARITY', 'dpr', 'polarity_loose'):.3f}" + (
                     f"; ceiling {r.steering['POLARITY']['ceiling']:.3f}"
                     if "ceiling" in r.steering["POLARITY"] else ""))),
    Check("EVERYDAY positive: share of the wanted tag ≥ 0.90",
          _level("EVERYDAY+", "tag_precision@10", 0.90)),
    Check("EVERYDAY negative: share of the avoided tag ≤ 0.03",
          _level("EVERYDAY-", "violation@10", 0.03, below=True)),
    Check("EVERYDAY combined: share meeting both ≥ 0.85",
          _level("EVERYDAY+-", "satisfied@10", 0.85)),
    Check("EVERYDAY vague: items of 10 changed ≤ 2",
          _level("EVERYDAY?", "changed@10", 2.0, below=True, digits=2)),
    Check("parser, generator held-out (every tag right) ≥ 0.95",
          _parser("generator held-out", 0.95)),
    Check("parser, everyday set ≥ 0.90", _parser("everyday", 0.90, families=True)),
)


def load(run_dir: str | pathlib.Path) -> Run:
  """A finished run's results files; a clear error when the steering results are missing."""
  run_dir = pathlib.Path(run_dir)
  steering_file = run_dir / "results_steering.json"
  if not steering_file.is_file():
    raise FileNotFoundError(f"{steering_file} not found: run the `:dpr` preset (or --mode eval) "
                            "in that directory first")
  steering = json.loads(steering_file.read_text())
  parser_file = run_dir / "results_parser.json"
  parser = json.loads(parser_file.read_text()) if parser_file.is_file() else {}
  return Run(steering["results"], parser, steering["protocol"].get("model", "?"))


def _leading(figure: str) -> float | None:
  match = re.match(r"-?[0-9]+(\.[0-9]+)?", figure)
  return float(match.group()) if match else None


def table(runs: dict[str, Run | list[Run]]) -> str:
  """The Markdown table: a row per check of CHECKS, a column per named run (or list of seeds:
  the checks on their mean, with the range of the leading figure)."""
  head = ("| check (target; test users, primary rows) | " + " | ".join(runs) + " |\n"
          + "|---|" + "---|" * len(runs) + "\n")
  columns = {name: (r if isinstance(r, list) else [r]) for name, r in runs.items()}
  rows, met_count = [], {name: 0 for name in columns}
  for check in CHECKS:
    cells = []
    for name, seeds in columns.items():
      try:
        figure, met, note = check.cell(Run.mean(seeds) if len(seeds) > 1 else seeds[0])
        if len(seeds) > 1:
          each = [_leading(check.cell(r)[0]) for r in seeds]
          if None not in each:
            digits = len(figure.split()[0].split(".")[-1])
            spread = f"seeds {min(each):.{digits}f}-{max(each):.{digits}f}"
            note = f"{spread}; {note}" if note else spread
      except KeyError as e:  # a task or method the run did not evaluate
        cells.append(f"- (no {e.args[0]!r} in the results)")
        continue
      met_count[name] += bool(met)
      cells.append(f"{figure} {'✓' if met else '✗'}" + (f" ({note})" if note else ""))
    rows.append(f"| {check.label} | " + " | ".join(cells) + " |\n")
  rows.append("| checks met | " + " | ".join(f"{n} of {len(CHECKS)}" for n in met_count.values())
              + " |\n")
  return head + "".join(rows)


def main(argv: list[str]) -> int:
  if not argv or any("=" not in a for a in argv):
    print("error: usage: python -m dpr_jax.eval.acceptance NAME=RUN_DIR[,RUN_DIR...] ...",
          file=sys.stderr)
    return 2
  try:
    runs = {name: [load(p) for p in paths.split(",")]
            for name, paths in (a.split("=", 1) for a in argv)}
  except (OSError, ValueError, KeyError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(table(runs), end="")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
