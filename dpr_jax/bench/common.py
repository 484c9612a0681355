"""Shared benchmark helpers: timing with compile time apart, percentiles, device and machine
facts, compiled memory / cost analysis, a dense-matmul FLOP-rate probe, and the record writer
(one JSON file per run plus a Markdown table) used by every suite.

A suite builds a list of flat ``rows`` (dicts of numbers and short strings) and calls
:func:`write_record`, which adds the machine, command, jax version, date and commit.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import atomic
from dpr_jax.errors import ConfigError, UserError
from dpr_jax.eval import report

ROOT = pathlib.Path(__file__).resolve().parents[2]


# ================================================================================ timing
def percentile(values: Sequence[float], q: float) -> float:
  """q-th percentile (0..100) with linear interpolation; NaN for no values."""
  if not values:
    return float("nan")
  return float(np.percentile(np.asarray(values, np.float64), q))


def time_calls(fn: Callable[[], Any], reps: int, warmup: int = 1) -> list[float]:
  """Seconds of each of ``reps`` calls of ``fn()`` (blocked until ready) after ``warmup`` calls."""
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return times


def compile_timed(jitted, *args, **kwargs):
  """(compiled, seconds to lower + compile) of a ``jax.jit`` function for these arguments."""
  t0 = time.perf_counter()
  compiled = jitted.lower(*args, **kwargs).compile()
  return compiled, time.perf_counter() - t0


def summary(times: Sequence[float]) -> dict[str, float]:
  """p50 / p90 / p99 / min / mean of call times, in milliseconds."""
  ms = [t * 1e3 for t in times]
  return {"p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
          "p99_ms": percentile(ms, 99), "min_ms": min(ms) if ms else float("nan"),
          "mean_ms": statistics.fmean(ms) if ms else float("nan"), "reps": len(ms)}


# ================================================================================ analysis
def memory_stats(compiled) -> dict[str, float] | None:
  """Compiled memory of one program, MiB per device, or None where the backend has none.

  ``peak_mib`` = arguments + outputs - aliased (donated) + temporaries: everything the program
  holds at once at most. (XLA's own ``peak_memory_in_bytes`` is left out: on CPU it reported
  less than the temporaries alone.)
  """
  try:
    stats = compiled.memory_analysis()
  except Exception:  # noqa: BLE001 -- unimplemented on some backends
    return None
  if stats is None:
    return None
  mib = lambda b: float(b) / 2**20
  args, out = stats.argument_size_in_bytes, stats.output_size_in_bytes
  temp, alias = stats.temp_size_in_bytes, stats.alias_size_in_bytes
  peak = args + out - alias + temp
  return {"args_mib": mib(args), "out_mib": mib(out), "temp_mib": mib(temp),
          "alias_mib": mib(alias), "peak_mib": mib(peak)}


def cost_flops(compiled) -> float | None:
  """XLA's FLOP count of a compiled program (``cost_analysis()['flops']``), None if absent.

  Caveat: XLA counts a while-loop (``lax.scan``) body once, not once per iteration.
  """
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or "flops" not in cost:
    return None
  return float(cost["flops"])


def matmul_flop_rate(n: int | None = None, reps: int = 5, dtype=jnp.float32) -> dict[str, float]:
  """The dense-matmul floor: FLOP/s of one jitted [n, n] @ [n, n] product, median of ``reps``.

  ``n`` defaults to 2048 on CPU and 8192 on accelerators (large enough to run at the device's
  matmul rate, small enough to take well under a second).
  """
  if n is None:
    n = 2048 if jax.default_backend() == "cpu" else 8192
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((n, n)), dtype)
  b = jnp.asarray(rng.standard_normal((n, n)), dtype)
  f = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
  times = time_calls(lambda: f(a, b), reps)
  t = statistics.median(times)
  return {"matmul_n": n, "matmul_ms": round(t * 1e3, 3),
          "matmul_gflops": round(2 * n**3 / t / 1e9, 2),
          "matmul_dtype": jnp.dtype(dtype).name}


def floor_fraction(model_flops: float, seconds: float, rate_flops: float) -> float:
  """Fraction of the matmul floor reached: (model_flops / rate) / seconds, in [0, ~1]."""
  return model_flops / rate_flops / seconds


# Vendor datasheet peak matmul rates, TFLOP/s, dense (no structured sparsity), by the compute
# dtype's tensor-core path: under JAX's default precision a float32 matmul runs as TF32 on
# NVIDIA Ampere and later and as one bfloat16 pass on TPUs. Matched in order against
# ``device_kind`` (so "H100 PCIe" before "H100", whose entry is the SXM part). Devices not listed
# (and CPUs) have no peak; the dense-matmul floor measured in-process is always reported.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"float32": 378.0, "bfloat16": 756.0}),
    ("H100", {"float32": 494.7, "bfloat16": 989.4}),
    ("H200", {"float32": 494.7, "bfloat16": 989.4}),
    ("A100", {"float32": 156.0, "bfloat16": 312.0}),
    ("TPU v4 lite", {}),
    ("TPU v4", {"float32": 275.0, "bfloat16": 275.0}),
    ("TPU v5 lite", {"float32": 197.0, "bfloat16": 197.0}),
    ("TPU v5e", {"float32": 197.0, "bfloat16": 197.0}),
    ("TPU v5p", {"float32": 459.0, "bfloat16": 459.0}),
    ("TPU v6 lite", {"float32": 918.0, "bfloat16": 918.0}),
    ("TPU v6e", {"float32": 918.0, "bfloat16": 918.0}),
)


def peak_tflops(dtype: str = "float32", device_kind: str | None = None) -> float | None:
  """The datasheet peak (:data:`PEAK_TFLOPS`) of ``device_kind`` (default: the first device's)
  for matmuls in ``dtype``; None where the device is not in the table."""
  kind = (jax.devices()[0].device_kind if device_kind is None else device_kind).lower()
  for name, rates in PEAK_TFLOPS:
    if name.lower() in kind:
      return rates.get(dtype)
  return None


def peak_columns(model_flops: float, seconds: float, peak: float | None) -> dict[str, Any]:
  """``tflops`` achieved (model FLOPs / seconds) and its ``peak_fraction`` (None: no peak)."""
  tflops = model_flops / seconds / 1e12
  return {"tflops": tflops, "peak_fraction": None if peak is None else tflops / peak}


# ================================================================================ machine
def device_info() -> dict[str, Any]:
  dev = jax.devices()[0]
  return {"backend": jax.default_backend(), "device_kind": dev.device_kind,
          "device_count": jax.device_count()}


def machine_info() -> dict[str, Any]:
  """Host and device facts recorded with every run (load: 1-minute load average)."""
  try:
    load = os.getloadavg()[0]
  except OSError:
    load = float("nan")
  try:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
  except (ValueError, OSError):
    mem_gib = float("nan")
  return {"host": platform.node(), "cpu": report.cpu_model(), "cpu_count": os.cpu_count(),
          "mem_gib": round(mem_gib, 1), "load_1min": round(load, 2),
          "python": platform.python_version(), "jax": jax.__version__, **device_info()}


def device_peak_mib() -> float | None:
  """Peak bytes in use on the first device so far (``Device.memory_stats()``), MiB; None where
  the backend keeps no such statistics (CPU)."""
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # noqa: BLE001
    return None
  if not stats or "peak_bytes_in_use" not in stats:
    return None
  return stats["peak_bytes_in_use"] / 2**20


def peak_rss_mib() -> float:
  """Peak resident memory of this process, MiB (VmHWM, else ru_maxrss)."""
  try:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def git_commit() -> str:
  try:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, timeout=10)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "dpr_jax"], cwd=ROOT,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else ""
  except (OSError, subprocess.SubprocessError):
    return ""


# ================================================================================ records
def default_out_dir() -> pathlib.Path:
  return ROOT / "reports" / f"bench_{jax.default_backend()}"


def fake_devices_env(devices: int | None = None) -> dict:
  """This process's environment for a ``python -m dpr_jax.bench`` child: the project on
  PYTHONPATH and, with ``devices``, that many fake CPU devices."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
  if devices:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={devices}").strip()
    env["JAX_PLATFORMS"] = "cpu"
  return env


def add_common_args(p: argparse.ArgumentParser) -> None:
  p.add_argument("--out", default=None,
                 help="report folder (default reports/bench_<backend>); 'none' writes nothing")
  p.add_argument("--tag", default="", help="suffix of the record's file name")


def _fmt(v: Any) -> str:
  if isinstance(v, bool) or v is None:
    return "" if v is None else str(v)
  if isinstance(v, (int, np.integer)):
    return f"{int(v):,}"
  if isinstance(v, (float, np.floating)):
    v = float(v)
    if not np.isfinite(v):
      return "n/a"
    if v == 0:
      return "0"
    if abs(v) >= 1000:
      return f"{v:,.0f}"
    if abs(v) >= 10:
      return f"{v:.1f}"
    if abs(v) >= 0.1:
      return f"{v:.3g}"
    return f"{v:.2g}"
  return str(v)


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
  """A Markdown table of ``rows``; columns default to every key, in first-seen order."""
  if columns is None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for r in rows:
    lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
  return "\n".join(lines)


def make_record(suite: str, rows: list[dict[str, Any]], params: dict[str, Any],
                notes: Sequence[str] = (), argv: Sequence[str] | None = None,
                cli_name: str | None = None) -> dict[str, Any]:
  """A run's record. ``suite`` names the record (and its files); the command line is
  ``python -m dpr_jax.bench <cli_name or suite> <argv>`` (argv defaults to this process's)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  return {
      "suite": suite,
      "command": " ".join(["python -m dpr_jax.bench", cli_name or suite, *argv]),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "commit": git_commit(),
      "machine": machine_info(),
      "params": params,
      "rows": rows,
      "notes": list(notes),
  }


def record_markdown(record: dict[str, Any], columns: Sequence[str] | None = None) -> str:
  m = record["machine"]
  head = [f"## `{record['suite']}` — {record['date']}", "",
          f"    {record['command']}", "",
          f"Machine: {m['device_kind']} ({m['backend']}, {m['device_count']} device(s)); host "
          f"{m['cpu']}, {m['cpu_count']} CPUs, {m['mem_gib']} GiB, load {m['load_1min']}; "
          f"jax {m['jax']}, Python {m['python']}; commit {record['commit'] or 'n/a'}.", ""]
  if record["params"]:
    head += ["Parameters: " + ", ".join(f"{k}={v}" for k, v in record["params"].items()), ""]
  body = [markdown_table(record["rows"], columns), ""]
  notes = [f"- {n}" for n in record["notes"]]
  return "\n".join(head + body + notes) + "\n"


def write_record(record: dict[str, Any], out: str | None, tag: str = "",
                 columns: Sequence[str] | None = None, quiet: bool = False
                 ) -> pathlib.Path | None:
  """Prints the table; writes ``<out>/<suite>[_tag].json`` and ``.md`` (unless out == 'none').

  Long suites call it after every case with ``quiet`` (a partial record, rewritten in place),
  so a run stopped by a time limit keeps what it measured. Returns the JSON path (None when
  nothing was written).
  """
  md = record_markdown(record, columns)
  if not quiet:
    print(md)
  if out == "none":
    return None
  folder = pathlib.Path(out) if out else default_out_dir()
  folder.mkdir(parents=True, exist_ok=True)
  stem = record["suite"] + (f"_{tag}" if tag else "")
  path = folder / f"{stem}.json"
  atomic.write_text(path, json.dumps(record, indent=1, default=_json_default) + "\n")
  atomic.write_text(folder / f"{stem}.md", md)
  if not quiet:
    print(f"wrote {path}")
  return path


def _json_default(o):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  return str(o)


# ================================================================================ shapes
# ML-1M as GroupLens ships it (the canonical SASRec file keeps 3,416 of these items).
ML1M_USERS = 6040
ML1M_ITEMS = 3706
ML1M_TAGS = 18  # genres
PROMPT_DIM = 385  # all-MiniLM-L6-v2 (384) + the negation cue (dpr_jax/prompts/features.py)


def load_preset(spec: str):
  """``get_config(arg)`` of the preset file in ``spec`` = ``path[:arg]``.

  Raises ConfigError (one line, as the launcher's) for a missing or unreadable file, a syntax
  error in it, or a preset argument it refuses.
  """
  path, _, arg = spec.partition(":")
  if not pathlib.Path(path).is_file():
    raise ConfigError(f"--config {spec}: no such config file")
  module_spec = importlib.util.spec_from_file_location("_bench_preset", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)
  except SyntaxError as e:
    raise ConfigError(f"{e.filename}:{e.lineno}: syntax error in the config file ({e.msg})"
                      ) from None
  except UserError as e:
    raise ConfigError(f"--config {spec}: {e}") from None
  except OSError as e:
    raise ConfigError(f"--config {spec}: " + " ".join(str(e).split())) from None


def load_config(spec: str | None, **overrides):
  """A preset (``configs/x.py[:arg]``, :func:`load_preset`) or the defaults of
  dpr_jax/config.py, unlocked copy.

  ``overrides``: dotted keys with ``__`` for dots, e.g. ``model__embed_dim=64``; None skipped.
  """
  from dpr_jax import config as config_lib

  if spec:
    config = load_preset(spec)
  else:
    config = config_lib.default_config()
  config = config.copy_and_resolve_references()
  config.unlock()
  for key, value in overrides.items():
    if value is None:
      continue
    node = config
    *parents, leaf = key.split("__")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def load_config_with_sets(path: str, overrides: Sequence[str]):
  """``get_config(arg)`` of a preset file (``path[:arg]``), then ``key=value`` overrides, each
  converted to the type of the value it replaces (ConfigError for an unknown key or a value
  that does not convert)."""
  config = load_preset(path)
  for item in overrides:
    key, sep, value = item.partition("=")
    try:
      node = config
      *parents, leaf = key.split(".")
      for p in parents:
        node = node[p]
      old = node[leaf]
    except (AttributeError, KeyError):
      raise ConfigError(f"--set {item}: unknown config key {key!r}") from None
    if not sep:
      raise ConfigError(f"--set {item}: give KEY=VALUE")
    try:
      node[leaf] = (value.lower() in ("1", "true") if isinstance(old, bool)
                    else type(old)(value))
    except (TypeError, ValueError):
      raise ConfigError(f"--set {item}: cannot convert {value!r} to {type(old).__name__}"
                        ) from None
  return config


def int_at_least(minimum: int) -> Callable[[str], int]:
  """argparse type: an integer >= ``minimum`` (argparse prints the error and exits with 2)."""

  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value

  return parse


positive_int = int_at_least(1)  # counts and sizes


def add_shape_args(p: argparse.ArgumentParser, batch: int | None = None) -> None:
  """--config, --items, --d, --len, --batch: synthetic ML-1M shapes unless given."""
  p.add_argument("--config", action="append", default=None,
                 help="preset (configs/<preset>.py), repeatable: each preset's own backbone is "
                      "benchmarked with its sizes; default dpr_jax/config.py for every --models")
  p.add_argument("--items", type=positive_int, default=ML1M_ITEMS,
                 help="catalogue size N (real items)")
  p.add_argument("--d", type=positive_int, default=None, help="embed_dim (default: the config's)")
  p.add_argument("--len", type=positive_int, default=None, help="max_len L (default: the config's)")
  p.add_argument("--batch", type=positive_int, default=batch,
                 help="batch size B (default: the config's)")


def synthetic_sequences(rng: np.random.Generator, shape: tuple[int, ...], num_items: int,
                        min_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded (inputs, targets) int32[..., L]; lengths uniform in [min_len, L] (default L).

  ``targets`` are the next items (0 at padding), as the trainer's batches.
  """
  length = shape[-1]
  seq = rng.integers(1, num_items + 1, size=shape[:-1] + (length + 1,)).astype(np.int32)
  lens = (np.full(shape[:-1], length) if min_len is None
          else rng.integers(min_len, length + 1, size=shape[:-1]))
  keep = np.arange(length)[None] >= (length - lens.reshape(-1, 1))  # [prod, L]
  keep = keep.reshape(shape)
  inputs = np.where(keep, seq[..., :-1], 0).astype(np.int32)
  targets = np.where(keep, seq[..., 1:], 0).astype(np.int32)
  return inputs, targets


def random_params(init_fn, seed: int = 0):
  """Random parameters with the shapes ``init_fn()`` would create, drawn in numpy.

  ``init_fn``: a no-argument function returning (possibly logically boxed) params; only its
  shapes are evaluated (``jax.eval_shape``), so nothing is compiled -- on a loaded CPU the
  random initialisers of a whole model compile for tens of seconds. Arrays of 2+ axes ~
  N(0, 1/n), n the product of all but the last axis (embeddings: 1/d), LayerNorm scales 1, other vectors N(0, 0.02^2). For benchmarks and tests.
  """
  import flax.linen as nn

  abstract = nn.unbox(jax.eval_shape(init_fn))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    shape = leaf.shape
    if len(shape) >= 2:
      fan_in = shape[-1] if "embedding" in name else int(np.prod(shape[:-1]))
      value = rng.standard_normal(shape) * fan_in**-0.5
    elif "scale" in name:
      value = np.ones(shape)
    else:
      value = rng.standard_normal(shape) * 0.02
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, abstract)


def model_configs(specs: Sequence[str] | None, models: Sequence[str], **overrides) -> list:
  """The configs of the benchmarked backbones.

  With presets, one config per preset whose ``model.name`` is in ``models`` (so
  ``--config configs/ml1m_sasrec.py --config configs/ml1m_gru4rec.py`` benchmarks each with its
  own sizes); without, the defaults once per name in ``models``. ``overrides`` as in
  :func:`load_config`.
  """
  if specs:
    configs = [load_config(spec, **overrides) for spec in specs]
    chosen = [c for c in configs if c.model.name in models]
    if models and not chosen:
      raise ConfigError(f"no --config preset is one of --models {' '.join(models)} (the presets"
                        f" hold {', '.join(sorted({c.model.name for c in configs}))})")
    return chosen
  out = []
  for name in models:
    config = load_config(None, **overrides)
    config.model.name = name
    out.append(config)
  return out


def synthetic_split(num_users: int, num_items: int, max_len: int, seed: int = 0):
  """A leave-one-out :class:`~dpr_jax.data.split.SplitData` of synthetic users with ML-1M-like
  sequence lengths (log-normal, median ~96, 20..2,314 interactions) and Zipf-like item
  popularity: what the evaluator sees on ML-1M, shape for shape (about 40% of users fill L=200)."""
  from dpr_jax.data.split import leave_one_out
  from dpr_jax.data.types import InteractionData

  rng = np.random.default_rng(seed)
  lengths = np.clip(np.exp(rng.normal(np.log(96), 1.04, num_users)), 20, 2314).astype(int)
  pop = 1.0 / np.arange(1, num_items + 1) ** 0.8
  pop /= pop.sum()
  seqs = [(rng.choice(num_items, n, p=pop) + 1).astype(np.int32) for n in lengths]
  data = InteractionData(
      sequences=seqs, user_ids=[str(u) for u in range(num_users)],
      item_ids=[str(i) for i in range(1, num_items + 1)], item_titles=[""] * num_items,
      item_tags=[()] * num_items, tag_names=(), source_files=(), name="synthetic")
  return leave_one_out(data, max_len)
