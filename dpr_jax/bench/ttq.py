"""Time to quality: a preset trained from scratch until validation NDCG@10 reaches a target.

  python -m dpr_jax.bench ttq [--config configs/ml1m_sasrec.py] [--target X] [--budget-min 40]
                              [--set train.lr=2e-3 ...] [--peer compact [--peer-budget-min M]]

What a user waits for is not a step but a good model. This suite runs stage 1 of a preset as the
launcher does (``trainer.train_and_evaluate``: data from the cache, compile, the training loop,
validation every ``train.eval_every_epochs``), stopping at the first validation whose NDCG@10
reaches the target (``train.target_ndcg``; default: the model's converged validation NDCG@10
minus 1%, :data:`CONVERGED`) or once ``--budget-min`` minutes are spent
(``train.time_budget_min``), and records at every validation (wall seconds since the run
started, epoch, validation NDCG@10), then the test NDCG@10 of the best checkpoint (full ranking,
seen items masked). Results: ``ttq[_tag].{json,md,png}`` under ``--out``.

``--peer dense|compact|compiled`` then trains the PyTorch peer of ``bench peer`` (SASRec presets
only) the same way, back to back: the same initial parameters (ours, copied), the same batches
in the same order (the trainer's ``BatchOrder``), the same AdamW, clipping and learning-rate
schedule, validation at the same epochs with the same ranking rule, the same stopping rules;
only dropout's random draws differ. Its budget (``--peer-budget-min``) defaults to three times
our time to the target (three times our budget if we miss it), which is what "a third of the
peer's time" needs to be decided. Both curves go on one plot.

Wall time counts everything after the process has imported jax: reading the cached data,
building and compiling the model, training, validating, checkpointing, and the final evaluation
(the row ``end``). The data must already be cached (run the preset once, or ``--set
train.num_epochs=1``), so that a download does not count.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import shutil
import tempfile
import time

from dpr_jax import atomic
from dpr_jax.bench import common
from dpr_jax.errors import ConfigError

# Validation NDCG@10 (seen items masked) of each model's preset trained to convergence: the
# H100 runs of reports/ml1m_stage1_h100/{sasrec,gru4rec}_wide_results_seq.json.
CONVERGED = {"sasrec": 0.1966, "gru4rec": 0.1948}
PEERS = ("dense", "compact", "compiled")


def curve(metrics_path: pathlib.Path, start_unix: float) -> list[dict]:
  """(wall s since start, epoch, validation NDCG@10) of each validation in a run's log."""
  rows = []
  for line in metrics_path.read_text().splitlines():
    rec = json.loads(line)
    if "valid/ndcg@10" in rec and "unix_s" in rec:
      rows.append({"run": "dpr_jax", "wall_s": round(rec["unix_s"] - start_unix, 1),
                   "epoch": rec["epoch"], "valid_ndcg@10": round(rec["valid/ndcg@10"], 4),
                   "train_loss": round(rec["train/loss"], 4)})
  return rows


def run_ours(config) -> tuple[list[dict], dict, float]:
  """Stage 1 of ``config`` as the launcher runs it; (curve rows, results, wall s)."""
  from dpr_jax.train import trainer

  start = time.time()
  results = trainer.train_and_evaluate(config)
  return curve(pathlib.Path(config.run.dir) / "metrics.jsonl", start), results, time.time() - start


def run_peer(config, variant: str) -> tuple[list[dict], dict, float]:
  """The PyTorch peer trained like ours (module docstring); (curve rows, results, wall s)."""
  import jax

  from dpr_jax import sharding
  from dpr_jax.bench import peer
  from dpr_jax.data.pipeline import BatchOrder
  from dpr_jax.data.prepare import prepare
  from dpr_jax.models import build_backbone
  from dpr_jax.train.step import create_state, learning_rate, make_optimizer
  from dpr_jax.train.trainer import Schedule, stop_reason

  torch = peer._torch()  # pylint: disable=protected-access
  start = time.time()
  if config.model.name != "sasrec":
    raise ConfigError("--peer: the PyTorch peer is a SASRec; give a sasrec preset")
  torch.manual_seed(config.train.seed)
  data = prepare(config.data)
  order = BatchOrder(data.num_users, config.train.batch_size, config.train.seed)
  schedule = Schedule.from_config(config.train, order.steps_per_epoch)
  model = build_backbone(config.model, data.num_items, data.max_len)
  mesh = sharding.make_mesh(1, 1, jax.devices()[:1])
  state, _ = create_state(model, make_optimizer(config.train, order.steps_per_epoch), mesh,
                          config.train.seed, data.max_len)
  m = config.model
  module = peer.make_torch_sasrec(model.vocab_size, data.max_len, m.embed_dim, m.num_blocks,
                                  m.num_heads, m.mlp_dim, m.dropout)
  peer.copy_params(jax.device_get(state.params), module)
  opt = peer.torch_optimizer(module, config.train)
  lr = learning_rate(config.train, order.steps_per_epoch)
  scheduler = (None if not callable(lr) else torch.optim.lr_scheduler.LambdaLR(
      opt, lambda step: float(lr(step)) / config.train.lr))
  trained = torch.compile(module) if variant == "compiled" else module
  compact = variant != "dense"
  rows, best, evals_since_best, step, t0 = [], (-1.0, None), 0, 0, time.time()
  while step < schedule.total:
    for idx in order.indices(step, schedule.steps_per_call):
      x = torch.from_numpy(data.train_inputs[idx]).long()
      y = torch.from_numpy(data.train_targets[idx]).long()
      loss = peer.torch_train_step(trained, opt, x, y, data.num_items, config.train.grad_clip,
                                   compact)
      if scheduler is not None:
        scheduler.step()
    step += schedule.steps_per_call
    if step % schedule.eval_every and step != schedule.total:
      continue
    val = peer.torch_eval(module, data, "valid", config.eval.batch_size, data.num_items)
    improved = val["ndcg@10"] > best[0]
    evals_since_best = 0 if improved else evals_since_best + 1
    if improved:
      best = (val["ndcg@10"], copy.deepcopy(module.state_dict()))
    rows.append({"run": f"torch {variant}", "wall_s": round(time.time() - start, 1),
                 "epoch": round(schedule.epoch(step), 2),
                 "valid_ndcg@10": round(val["ndcg@10"], 4),
                 "train_loss": round(loss.item(), 4)})
    print(f"  peer {variant}: epoch {rows[-1]['epoch']}, {rows[-1]['wall_s'] / 60:.1f} min, "
          f"validation NDCG@10 {val['ndcg@10']:.4f}", flush=True)
    if stop_reason(config.train, evals_since_best, val["ndcg@10"], time.time() - t0):
      break
  module.load_state_dict(best[1])
  results = {split: peer.torch_eval(module, data, split, config.eval.batch_size, data.num_items)
             for split in ("valid", "test")}
  return rows, results, time.time() - start


def minutes_to(rows: list[dict], target: float) -> float | None:
  hit = next((r for r in rows if r["valid_ndcg@10"] >= target), None)
  return None if hit is None else round(hit["wall_s"] / 60, 2)


def plot(runs: dict[str, list[dict]], target: float, path: pathlib.Path, title: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for name, rows in runs.items():
    ax.plot([r["wall_s"] / 60 for r in rows], [r["valid_ndcg@10"] for r in rows], marker="o",
            label=name)
  ax.axhline(target, color="gray", linestyle="--", label=f"target {target:.4f}")
  ax.set_xlabel("wall time (min)")
  ax.set_ylabel("validation NDCG@10")
  ax.set_title(title, fontsize=9)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main() -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench ttq",
                              description=__doc__.splitlines()[0])
  p.add_argument("--config", default="configs/ml1m_sasrec.py", help="preset (path[:arg])")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="config override, e.g. train.lr=2e-3 (repeatable)")
  p.add_argument("--target", type=float, default=None,
                 help="validation NDCG@10 to stop at (default: the model's converged value"
                 " minus 1%%)")
  p.add_argument("--budget-min", type=float, default=40.0, help="stop after this many minutes")
  p.add_argument("--run-dir", default=None, help="run folder (default: a fresh temporary one)")
  p.add_argument("--peer", choices=PEERS, default=None,
                 help="also train this PyTorch peer variant the same way, back to back")
  p.add_argument("--peer-budget-min", type=float, default=None,
                 help="the peer's budget (default: 3x our minutes to the target)")
  common.add_common_args(p)
  args = p.parse_args()
  from dpr_jax import console

  config = common.load_config_with_sets(args.config, args.set)
  model = config.model.name
  if model not in CONVERGED and args.target is None:
    raise ConfigError(f"--target: no converged value known for model {model!r}; give one")
  target = args.target if args.target is not None else round(CONVERGED[model] * 0.99, 4)
  config.train.target_ndcg = target
  config.train.time_budget_min = args.budget_min
  config.run.progress = False
  keep = args.run_dir is not None
  run_dir = pathlib.Path(args.run_dir or tempfile.mkdtemp(prefix="dpr_ttq_"))
  if keep and (run_dir / "metrics.jsonl").exists():
    raise ConfigError(f"--run-dir {run_dir} already holds a run; time to quality starts from"
                      " scratch")
  config.run.dir = str(run_dir)
  console.quiet_libraries(False)

  # ---------------------------------------------------------------- ours
  rows, results, wall = run_ours(config)
  if not keep:
    shutil.rmtree(run_dir, ignore_errors=True)
  runs = {"dpr_jax": rows}
  ends = [{"run": "dpr_jax", "wall_s": round(wall, 1), "epoch": "end (best checkpoint)",
           "valid_ndcg@10": round(results["valid"]["ndcg@10"], 4),
           "test_ndcg@10": round(results["test"]["ndcg@10"], 4)}]
  summary = {"dpr_jax": {"minutes_to_target": minutes_to(rows, target),
                         "test_ndcg@10": results["test"]["ndcg@10"],
                         "valid_ndcg@10": results["valid"]["ndcg@10"],
                         "wall_min": round(wall / 60, 2)}}

  # ---------------------------------------------------------------- the peer
  if args.peer:
    ours_min = summary["dpr_jax"]["minutes_to_target"]
    config.train.time_budget_min = (args.peer_budget_min if args.peer_budget_min is not None
                                    else 3 * (ours_min or args.budget_min))
    name = f"torch {args.peer}"
    peer_rows, peer_results, peer_wall = run_peer(config, args.peer)
    runs[name] = peer_rows
    ends.append({"run": name, "wall_s": round(peer_wall, 1), "epoch": "end (best state)",
                 "valid_ndcg@10": round(peer_results["valid"]["ndcg@10"], 4),
                 "test_ndcg@10": round(peer_results["test"]["ndcg@10"], 4)})
    summary[name] = {"minutes_to_target": minutes_to(peer_rows, target),
                     "test_ndcg@10": peer_results["test"]["ndcg@10"],
                     "valid_ndcg@10": peer_results["valid"]["ndcg@10"],
                     "wall_min": round(peer_wall / 60, 2),
                     "budget_min": config.train.time_budget_min}

  # ---------------------------------------------------------------- record
  notes = []
  for name, s in summary.items():
    notes.append(f"{name}: target validation NDCG@10 {target:.4f} " + (
        f"reached at {s['minutes_to_target']:.1f} min" if s["minutes_to_target"] is not None
        else "not reached") + f"; test NDCG@10 of the best {s['test_ndcg@10']:.4f} (full"
        f" ranking, seen items masked); wall {s['wall_min']:.1f} min")
  if args.peer and summary["dpr_jax"]["minutes_to_target"] and summary[name]["minutes_to_target"]:
    ratio = summary[name]["minutes_to_target"] / summary["dpr_jax"]["minutes_to_target"]
    summary["time_ratio"] = round(ratio, 2)
    notes.append(f"time to the target: the peer takes {ratio:.2f}x ours")
  params = {"config": args.config, "model": model, "embed_dim": config.model.embed_dim,
            "lr": config.train.lr, "lr_schedule": config.train.lr_schedule,
            "num_epochs": config.train.num_epochs, "batch_size": config.train.batch_size,
            "eval_every_epochs": config.train.eval_every_epochs, "target": target,
            "budget_min": args.budget_min, "sets": args.set}
  record = common.make_record("ttq", [r for rs in runs.values() for r in rs] + ends, params,
                              notes, cli_name="ttq")
  record["summary"] = summary
  # The Markdown shows NDCG with 4 decimals (the record's generic format keeps 3 digits).
  shown = dict(record, rows=[{k: (f"{v:.4f}" if "ndcg" in k else v) for k, v in r.items()}
                             for r in record["rows"]])
  print(common.record_markdown(shown))
  path = common.write_record(record, args.out, args.tag, quiet=True)
  if path is not None:
    atomic.write_text(path.with_suffix(".md"), common.record_markdown(shown))
    print(f"wrote {path}")
    plot(runs, target, path.with_suffix(".png"),
         f"{model} ({args.config}) {' '.join(args.set)}")
    print(f"wrote {path.with_suffix('.png')}")


if __name__ == "__main__":
  main()
