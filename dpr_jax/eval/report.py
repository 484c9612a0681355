"""Results files: JSON plus a Markdown table, both carrying the docs/protocol.md fields."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import subprocess

import jax

from dpr_jax import atomic

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]


def git_commit() -> str:
  try:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=10)
    commit = out.stdout.strip() if out.returncode == 0 else "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout
    return commit + ("+dirty" if dirty.strip() and commit != "unknown" else "")
  except (OSError, subprocess.SubprocessError):
    return "unknown"


def device_description() -> str:
  d = jax.devices()[0]
  return f"{len(jax.devices())} x {d.platform}:{getattr(d, 'device_kind', '?')}"


def cpu_model() -> str:
  """The host CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def host_description() -> str:
  """The host's CPU model and core count. XLA:CPU's floating-point results can differ between
  CPU models, so a run is reproduced bit for bit only on the same kind of host."""
  return f"{cpu_model()}, {os.cpu_count()} cpus"


def protocol_fields(manifest: dict, seed: int, masking: str, templates: str = "none") -> dict:
  """The fields every results file records (docs/protocol.md, top)."""
  return {
      "dataset": manifest.get("name"),
      "dataset_format": manifest.get("format"),
      "dataset_files": manifest.get("sources", []),
      "synthetic": manifest.get("synthetic"),
      "split": manifest.get("split"),
      "max_len": manifest.get("max_len"),
      "masking": masking,
      "templates": templates,
      "seed": seed,
      "commit": git_commit(),
      "device": device_description(),
      "host": host_description(),
      "jax": jax.__version__,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def markdown_table(results: dict[str, dict[str, float]], metric_names: list[str]) -> str:
  """One row per (row name -> metrics), one column per metric."""
  head = "| | " + " | ".join(metric_names) + " |\n|---|" + "---|" * len(metric_names) + "\n"
  rows = "".join(
      f"| {name} | " + " | ".join(f"{m.get(k, float('nan')):.4f}" for k in metric_names) + " |\n"
      for name, m in results.items())
  return head + rows


def write_results(directory: str | pathlib.Path, stem: str, results: dict, fields: dict,
                  metric_names: list[str]) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes ``<stem>.json`` and ``<stem>.md`` atomically; returns their paths."""
  directory = atomic.as_path(directory)
  json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
  atomic.write_text(json_path, json.dumps({"protocol": fields, "results": results}, indent=2))
  files = ", ".join(f"`{f['path']}` (sha256 {f['sha256'][:12]}…)" for f in fields["dataset_files"])
  md = (f"# {stem}\n\n" + markdown_table(results, metric_names) + "\n"
        + "\n".join(f"- {k}: {v}" for k, v in fields.items() if k != "dataset_files")
        + f"\n- dataset_files: {files or 'none (synthetic)'}\n")
  atomic.write_text(md_path, md)
  return json_path, md_path
