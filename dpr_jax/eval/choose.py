"""A choice between finished runs, made on validation users by the protocol's rule.

    python -m dpr_jax.eval.choose E4k1=runs/a0,runs/a1,runs/a2 E8k2=runs/b E1=runs/c

The first name is the incumbent (today's default); each name is one variant, given as one run
directory or several (seeds, comma-separated). Reads only the ``valid`` tables of each run's
``results_steering.json`` and applies ``docs/protocol.md``'s rule for a choice that trades
tasks:

1. constraint: unprompted DPR within 1% of stage 1's backbone on validation NDCG@10 (SEQ; a
   stage 3 that tunes the backbone is held to the backbone it started from);
2. the highest sum of DPR's validation NDCG@10 over SEQ, POS, NEG, NUANCED and COMBINED;
3. the incumbent stays unless the best variant's sum beats it by more than the incumbent's own
   spread over seeds (max - min of its sums; 0 with one seed): a margin the seed alone makes is
   no reason to change a default.

Prints a Markdown table (a row per variant: the five NDCG@10, their sum, and beside them NEG
Violation@10, NUANCED TagPrecision@10, COMBINED Satisfied@10, POLARITY strict, the routing's
usage entropy and how much the two polarities share experts; each the mean over seeds, the
sum's range in brackets) and the verdict. Test figures are never read.

    python -m dpr_jax.eval.choose --grid positive_scale runs/a0,runs/a1,runs/a2

applies the same rule to an inference switch every evaluation compares on validation
(``selection.<switch>`` of ``results_steering.json``: its grid, per task): each value of the
grid is a variant whose tasks the switch moves take the grid's figures and the others the run's
validation table, over the given runs (seeds); the configured value is the incumbent. A value
the evaluation marks as failing its own constraint (``meets_constraint``: the scales' tag
figures) in any seed does not compete. A switch of another ranking
(``filter_positive_scale``: DPR + filter) puts that ranking's NDCG@10 in the columns it moves,
as the table's header says; the sums then compare its values with each other.
"""

from __future__ import annotations

import dataclasses
import sys

from dpr_jax.eval import acceptance

TASKS = ("SEQ", "POS", "NEG", "NUANCED", "COMBINED")
SEQ_TOLERANCE = 0.01  # unprompted DPR may differ from its backbone by at most this share
SIDE = (("NEG", "violation@10", "NEG Viol@10"), ("NUANCED", "tag_precision@10", "NUANCED TagP@10"),
        ("COMBINED", "satisfied@10", "COMB Sat@10"), ("POLARITY", "polarity", "POLARITY"))


@dataclasses.dataclass(frozen=True)
class Variant:
  """One variant's validation figures: ``ndcg`` {task: mean DPR NDCG@10}, ``sums`` (one per
  seed), ``seq_ok`` (every seed meets the SEQ constraint), ``side`` {label: mean figure}."""
  name: str
  ndcg: dict
  sums: tuple
  seq_ok: bool  # meets the constraints (False: fails ``failed``)
  side: dict
  failed: str = "SEQ within 1%"  # the constraint a variant with ``seq_ok`` False fails

  @property
  def total(self) -> float:
    return sum(self.sums) / len(self.sums)

  @property
  def spread(self) -> float:
    return max(self.sums) - min(self.sums)


def _valid(run: acceptance.Run) -> dict:
  if "valid" not in run.steering:
    raise KeyError("valid")
  return run.steering["valid"]


def _stage1(valid: dict) -> float:
  """Stage 1's unprompted validation NDCG@10: the backbone row, or the reference row when stage
  3 tuned the backbone (the sequential quality a user had before DPR)."""
  methods = valid["SEQ"]["methods"]
  return float(methods.get("stage1 backbone", methods["backbone"])["ndcg@10"])


def routing_overlap(routing: dict) -> float:
  """How much positive and negative requests share experts: sum over experts of the smaller of
  the two polarities' shares (0: no expert sees both, 1: both routed alike; 1 minus the total
  variation distance of the two routing distributions)."""
  return float(sum(min(p, n) for p, n in zip(routing["positive_share"],
                                             routing["negative_share"])))


def variant(name: str, runs: list[acceptance.Run]) -> Variant:
  """The validation figures of one variant over its seeds (KeyError: a task is missing)."""
  valids = [_valid(r) for r in runs]
  dpr = lambda v, t, m="ndcg@10": float(v[t]["methods"]["dpr"][m])  # noqa: E731
  sums = tuple(sum(dpr(v, t) for t in TASKS) for v in valids)
  seq_ok = all(abs(dpr(v, "SEQ") - _stage1(v)) <= SEQ_TOLERANCE * _stage1(v) for v in valids)
  mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
  side = {}
  for task, metric, label in SIDE:
    figures = [dpr(v, task, metric) for v in valids if task in v]
    if figures:
      side[label] = mean(figures)
  routing = [r.steering["routing"]["valid"] for r in runs
             if "valid" in r.steering.get("routing", {})]
  if routing:
    side["routing entropy"] = mean([r["usage_entropy"] for r in routing])
    side["pos/neg overlap"] = mean([routing_overlap(r) for r in routing])
  return Variant(name, {t: mean([dpr(v, t) for v in valids]) for t in TASKS}, sums, seq_ok,
                 side)


def grid_variants(switch: str, runs: list[acceptance.Run]) -> list[Variant]:
  """One variant per value of ``switch``'s validation grid over ``runs`` (seeds), the runs'
  configured value first (the incumbent). A task the grid does not hold (the switch leaves it
  alone) keeps the run's validation table. KeyError: a run has no such grid."""
  grids = [r.steering["selection"][switch] for r in runs]
  configured = {str(g["configured"]) for g in grids}
  if len(configured) != 1:
    raise ValueError(f"the runs were evaluated at different {switch} values: {sorted(configured)}")
  values = list(grids[0]["valid ndcg@10"])
  if any(list(g["valid ndcg@10"]) != values for g in grids):
    raise ValueError(f"the runs compared different {switch} grids")
  incumbent = configured.pop()
  values.sort(key=lambda v: v != incumbent)
  base = [variant("run", [r]) for r in runs]  # the validation tables, seed by seed
  out = []
  for value in values:
    per_seed = []
    for g, b in zip(grids, base):
      by_task = g.get("valid ndcg@10 by task") or {g["task"]: g["valid ndcg@10"]}
      per_seed.append({t: float(by_task[t][value]) if t in by_task else b.ndcg[t] for t in TASKS})
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    side = {}  # each task's own figure at this value (recorded beside the grid, not ruled on)
    for task in (grids[0].get("valid tag figure by task") or {}):
      figures = [g["valid tag figure by task"][task] for g in grids
                 if task in g.get("valid tag figure by task", {})]
      if len(figures) == len(grids):
        side[f"{task} {figures[0]['metric']}"] = mean([f["values"][value] for f in figures])
    # the evaluation's own constraint on the switch, where it records one (every seed must meet it)
    tags_ok = all(g.get("meets_constraint", {}).get(value, True) for g in grids)
    seq_ok = all(b.seq_ok for b in base)
    out.append(Variant(f"{switch}={value}", {t: mean([n[t] for n in per_seed]) for t in TASKS},
                       tuple(sum(n.values()) for n in per_seed), seq_ok and tags_ok, side,
                       "SEQ within 1%" if not seq_ok else next(
                           (g["constraint"] for g in grids if "constraint" in g), "")))
  return out


def choose(variants: list[Variant]) -> tuple[Variant, str]:
  """(the chosen variant, why) by the module docstring's rule; ``variants[0]`` is the
  incumbent."""
  incumbent = variants[0]
  allowed = [v for v in variants if v.seq_ok]
  if not allowed:
    return incumbent, "no variant meets the constraints; the incumbent stays"
  best = max(allowed, key=lambda v: v.total)
  if best is incumbent:
    return incumbent, (f"{incumbent.name} has the highest sum of the variants within the"
                       f" constraints ({incumbent.total:.4f})")
  if not incumbent.seq_ok:
    return best, (f"{incumbent.name} fails the SEQ constraint; {best.name} has the highest sum"
                  f" ({best.total:.4f})")
  margin = best.total - incumbent.total
  if margin <= incumbent.spread:
    return incumbent, (f"{best.name}'s sum {best.total:.4f} beats {incumbent.name}'s"
                       f" {incumbent.total:.4f} by {margin:.4f}, within {incumbent.name}'s seed"
                       f" spread {incumbent.spread:.4f}: {incumbent.name} stays")
  return best, (f"{best.name}'s sum {best.total:.4f} beats {incumbent.name}'s"
                f" {incumbent.total:.4f} by {margin:.4f}, more than {incumbent.name}'s seed"
                f" spread {incumbent.spread:.4f}")


def grid_ranking(switch: str, runs: list[acceptance.Run]) -> str:
  """Whose NDCG@10 a grid holds: "DPR", or e.g. "DPR + filter on POS, NUANCED, COMBINED" for a
  switch that moves another ranking (``selection.<switch>.method``)."""
  grid = runs[0].steering["selection"][switch]
  method = grid.get("method", "dpr")
  if method == "dpr":
    return "DPR"
  name = {"dpr+filter": "DPR + filter"}.get(method, method)
  return f"{name} on {grid['task'].replace('+', ', ')}"


def table(variants: list[Variant], ranking: str = "DPR") -> str:
  """The Markdown table and the verdict (module docstring); ``ranking`` names whose NDCG@10 the
  task columns hold."""
  chosen, why = choose(variants)
  side = [label for label in dict.fromkeys(k for v in variants for k in v.side)]
  head = (f"| variant (validation users, {ranking}) | seeds | " + " | ".join(TASKS + ("sum",) + tuple(side))
          + " |\n|---|---|" + "---|" * (len(TASKS) + 1 + len(side)) + "\n")
  rows = []
  for v in variants:
    name = v.name + (" (incumbent)" if v is variants[0] else "")
    name = f"**{name}** (chosen)" if v is chosen else name
    total = f"{v.total:.4f}" + (f" ({min(v.sums):.4f}-{max(v.sums):.4f})" if len(v.sums) > 1
                                else "")
    if not v.seq_ok:
      total += f" (fails {v.failed})"
    cells = [f"{v.ndcg[t]:.4f}" for t in TASKS] + [total] + [
        f"{v.side[k]:.4f}" if k in v.side else "-" for k in side]
    rows.append(f"| {name} | {len(v.sums)} | " + " | ".join(cells) + " |\n")
  return head + "".join(rows) + f"\nChosen: {chosen.name} -- {why}.\n"


def main(argv: list[str]) -> int:
  grid = argv[:1] == ["--grid"]
  if (len(argv) != 3 if grid else not argv or any("=" not in a for a in argv)):
    usage = ("--grid SWITCH RUN[,RUN...]" if grid
             else "INCUMBENT=RUN[,RUN...] NAME=RUN[,RUN...] ...")
    print(f"error: usage: python -m dpr_jax.eval.choose {usage}", file=sys.stderr)
    return 2
  load = lambda paths: [acceptance.load(p) for p in paths.split(",")]  # noqa: E731
  ranking = "DPR"
  try:
    if grid:
      runs = load(argv[2])
      variants, ranking = grid_variants(argv[1], runs), grid_ranking(argv[1], runs)
    else:
      variants = [variant(name, load(paths)) for name, paths in (a.split("=", 1) for a in argv)]
  except KeyError as e:
    missing = (f"{e.args[0]!r} in results_steering.json (no {argv[1]!r} grid: evaluated before it"
               " existed?)" if grid else f"validation table {e.args[0]!r} in"
               " results_steering.json (written before the validation split?)")
    print(f"error: a run has no {missing}", file=sys.stderr)
    return 2
  except (OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(table(variants, ranking), end="")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
