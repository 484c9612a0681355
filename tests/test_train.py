"""One tiny training run end to end (as flax's lm1b train_test), checkpoints and resume."""

import json
import os

import pytest

from dpr_jax.data.prepare import prepare
from dpr_jax.errors import CheckpointError
from dpr_jax.eval.baselines import evaluate_scores, popularity_counts
from dpr_jax.train import trainer


def _losses(run_dir):
  lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
  return [l["train/loss"] for l in lines if "train/loss" in l]


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_tiny_run_learns_and_beats_popularity(tiny_config, tmp_path, model):
  config = tiny_config(model)
  results = trainer.train_and_evaluate(config)
  losses = _losses(tmp_path / "run")
  assert len(losses) >= 3 and losses[-1] < losses[0] - 0.5  # nats
  pop = evaluate_scores(prepare(config.data), "test", popularity_counts(prepare(config.data)))
  assert results["test"]["ndcg@10"] > 1.5 * pop["ndcg@10"]
  assert results["test"]["users"] == config.data.synthetic_users
  written = json.loads((tmp_path / "run" / "results_seq.json").read_text())
  for field in ("dataset", "split", "max_len", "masking", "seed", "commit", "device", "host"):
    assert field in written["protocol"]
  assert written["protocol"]["host"].endswith(f", {os.cpu_count()} cpus")  # CPU model, cores
  assert written["results"]["test (seen masked)"]["ndcg@10"] == pytest.approx(
      results["test"]["ndcg@10"])


@pytest.mark.parametrize("patience, evaluations", [(1, 2), (0, 6)])
def test_patience_stops_early_and_zero_runs_every_epoch(tiny_config, tmp_path, patience,
                                                        evaluations):
  # lr 1e-12: the parameters (and so validation NDCG@10) stay put, so no evaluation after the
  # first is a new best.
  config = tiny_config(**{"train.num_epochs": 6, "train.eval_every_epochs": 1,
                          "train.lr": 1e-12, "train.patience": patience})
  trainer.train_and_evaluate(config)
  lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert sum("valid/ndcg@10" in l for l in lines) == evaluations


@pytest.mark.slow
def test_eval_mode_restores_the_best_checkpoint_without_training(tiny_config, tmp_path):
  config = tiny_config(**{"train.num_epochs": 10})
  trained = trainer.train_and_evaluate(config)
  before = (tmp_path / "run" / "metrics.jsonl").read_text()
  evaluated = trainer.train_and_evaluate(config, mode="eval")
  assert evaluated["test"] == trained["test"]
  new_lines = (tmp_path / "run" / "metrics.jsonl").read_text()[len(before):].splitlines()
  assert all("train/loss" not in l for l in new_lines)  # no training happened


def test_eval_mode_without_checkpoint_is_a_clear_error(tiny_config):
  with pytest.raises(CheckpointError, match="no checkpoint"):
    trainer.train_and_evaluate(tiny_config(), mode="eval")


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tiny_config, tmp_path, preempted_after_saves):
  straight = trainer.train_and_evaluate(tiny_config(**{"run.dir": str(tmp_path / "a")}))
  config = tiny_config(**{"run.dir": str(tmp_path / "b")})
  with preempted_after_saves(2):
    trainer.train_and_evaluate(config)
  resumed = trainer.train_and_evaluate(config)
  assert resumed["test"] == straight["test"]
  # The resumed run did not redo the steps before the interruption.
  steps_b = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
             if "train/loss" in l]
  assert steps_b == sorted(set(steps_b))


def test_checkpoint_from_another_model_is_refused(tiny_config, tmp_path):
  trainer.train_and_evaluate(tiny_config(**{"train.num_epochs": 5}))
  other = tiny_config(**{"train.num_epochs": 5, "model.embed_dim": 16})
  with pytest.raises(CheckpointError, match=r"another model, dataset or optimizer"
                                            r" \(model\.embed_dim: \d+ -> 16\)"):
    trainer.train_and_evaluate(other)


def test_cosine_schedule_warms_up_peaks_and_decays():
  import ml_collections

  from dpr_jax.train.step import learning_rate

  c = ml_collections.ConfigDict({"lr": 2e-3, "lr_schedule": "cosine", "num_epochs": 10,
                                 "warmup_epochs": 1.0, "final_lr_fraction": 0.1})
  lr = learning_rate(c, steps_per_epoch=20)
  assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(1e-3)  # half-way up
  assert float(lr(20)) == pytest.approx(2e-3)  # peak after one epoch
  assert float(lr(110)) == pytest.approx(2e-3 * (0.1 + 0.9 * 0.5), rel=1e-4)  # cosine mid-point
  assert float(lr(200)) == pytest.approx(2e-4)  # lr * final_lr_fraction at num_epochs
  assert learning_rate(ml_collections.ConfigDict({"lr": 1e-3, "lr_schedule": "constant"})) == 1e-3


def test_schedule_run_trains_and_refuses_a_constant_lr_checkpoint(tiny_config, tmp_path):
  config = tiny_config(**{"train.lr_schedule": "cosine", "train.lr": 3e-3})
  trainer.train_and_evaluate(config)
  losses = _losses(tmp_path / "run")
  assert losses[-1] < losses[0] - 0.5
  # The optimizer state of a schedule has another shape: a constant-lr config must not restore it.
  with pytest.raises(CheckpointError, match="lr_schedule"):
    trainer.train_and_evaluate(tiny_config(), mode="eval")


@pytest.mark.parametrize("override", [{"train.target_ndcg": 1e-6}, {"train.time_budget_min": 1e-6}])
def test_target_or_time_budget_stops_at_the_first_validation(tiny_config, tmp_path, override):
  config = tiny_config(**{"train.num_epochs": 6, "train.eval_every_epochs": 1,
                          "train.patience": 0, **override})
  results = trainer.train_and_evaluate(config)
  lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert sum("valid/ndcg@10" in l for l in lines) == 1
  assert results["test"]["users"] == config.data.synthetic_users  # the best is still evaluated
