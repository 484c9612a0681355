"""``results_steering.{json,md,png}``: the steering tables as written for people."""

from __future__ import annotations

import json
import pathlib

from dpr_jax import atomic
from dpr_jax.eval.report import markdown_table, protocol_fields
from dpr_jax.eval.steering.tasks import EVERYDAY_TASKS

TABLE_KEYS = ("SEQ", "POS", "NEG", "NUANCED", "COMBINED", "POLARITY") + tuple(
    name for name, _ in EVERYDAY_TASKS.values())


def write_steering_results(directory: str | pathlib.Path, results: dict, manifest: dict,
                           seed: int, extra: dict) -> list[pathlib.Path]:
  """``results_steering.{json,md,png}`` with the protocol fields."""
  directory = atomic.as_path(directory)
  fields = protocol_fields(manifest, seed, masking="seen items masked",
                           templates="held-out (eval) templates and nuanced prompts") | extra
  fields["splits"] = ("test: the reported tables (top level); valid: the same tasks on"
                      " validation targets, where every choice in 'selection' was made")
  json_path = directory / "results_steering.json"
  atomic.write_text(json_path, json.dumps({"protocol": fields, "results": results}, indent=2))
  lines = ["# results_steering", ""]
  for split, tables in (("test", results), ("valid", results.get("valid", {}))):
    lines += [f"# {split} users" + (" (reported)" if split == "test" else
                                     " (selection only)"), ""]
    for task in TABLE_KEYS:
      if task not in tables:
        continue
      r = tables[task]
      cols = sorted({k for m in r["methods"].values() for k in m})
      lines += [f"## {task} ({r['users']} users)", "", markdown_table(r["methods"], cols)]
      if "read_ok" in r:
        lines += [f"- requests read with the labelled polarities: {r['read_ok']:.3f}", ""]
      if "ceiling" in r:
        lines += [f"- users whose unprompted top-10 is not all of the tag (the strict figure's"
                  f" ceiling): {r['ceiling']:.3f}", ""]
      if task == "COMBINED":
        lines += [f"- requests split into one positive and one negative part:"
                  f" {r['split_ok']:.3f}",
                  "- e.g. " + "; ".join(repr(t) for t in r["examples"]), ""]
  lines += ["# selection (validation)", ""]
  for switch, choice in results.get("selection", {}).items():
    lines.append(f"- {switch}: {json.dumps(choice)}")
  for split, report in results.get("routing", {}).items():
    lines.append(f"- routing ({split}): {json.dumps(report)}")
  lines += [f"- {k}: {v}" for k, v in fields.items() if k != "dataset_files"]
  md_path = directory / "results_steering.md"
  atomic.write_text(md_path, "\n".join(lines) + "\n")
  png_path = directory / "results_steering.png"
  bar_chart(results, png_path)
  return [json_path, md_path, png_path]


def bar_chart(results: dict, path: pathlib.Path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  panels = [("SEQ", "ndcg@10"), ("POS", "ndcg@10"), ("POS", "tag_precision@10"),
            ("NEG", "ndcg@10"), ("NEG", "violation@10"), ("NUANCED", "tag_precision@10"),
            ("POLARITY", "polarity")]
  panels += [("COMBINED", m) for m in ("ndcg@10", "satisfied@10") if "COMBINED" in results]
  fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
  for ax, (task, metric) in zip(axes, panels):
    methods = results[task]["methods"]
    names = [m for m in methods if metric in methods[m]]
    ax.bar(range(len(names)), [methods[m][metric] for m in names], color="C0")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_title(f"{task}: {metric}", fontsize=9)
  fig.tight_layout()
  atomic.write_with(path, lambda f: fig.savefig(f, format="png", dpi=110))
  plt.close(fig)
