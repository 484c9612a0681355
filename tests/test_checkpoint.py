"""Checkpoints read by whoever only uses a trained stage, and the one training loop."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dpr_jax import checkpoint, sharding
from dpr_jax.checkpoint import RunCheckpoints
from dpr_jax.errors import CheckpointError
from dpr_jax.train import loop
from dpr_jax.train.step import TrainState


def _state(seed: int, tx):
  params = {"table": jax.random.normal(jax.random.key(seed), (7, 4)),
            "block": {"w": jnp.full((4, 3), float(seed)), "b": jnp.arange(3.0)}}
  return TrainState(jnp.asarray(seed, jnp.int32), params, tx.init(params))


@pytest.mark.parametrize("tx", [optax.adamw(1e-3), optax.chain(optax.clip_by_global_norm(1.0),
                                                               optax.sgd(0.1, momentum=0.9))],
                         ids=["adamw", "clipped-sgd"])
def test_params_are_read_without_the_optimizer_that_wrote_them(tmp_path, tx):
  ckpts = RunCheckpoints(tmp_path / "ckpt")
  ckpts.save_latest(3, _state(3, tx), {"fingerprint": {"a": 1}})
  ckpts.save_best(2, _state(2, tx), {"fingerprint": {"a": 1}})
  ckpts.save_latest(5, _state(5, tx), {"fingerprint": {"a": 1}})
  ckpts.wait()
  reader = RunCheckpoints(tmp_path / "ckpt")
  latest = reader.read_params("latest", checkpoint.fingerprint_check({"a": 1}, "here"))
  best = reader.read_params("best")
  jax.tree.map(np.testing.assert_array_equal, latest, _state(5, tx).params)
  jax.tree.map(np.testing.assert_array_equal, best, _state(2, tx).params)
  mesh = sharding.make_mesh(1, 1)
  on_mesh = reader.read_params("latest", sharding=sharding.replicated(mesh))
  assert all(x.sharding == sharding.replicated(mesh) for x in jax.tree.leaves(on_mesh))
  with pytest.raises(CheckpointError, match=r"another config \(a: 1 -> 2\)"):
    reader.read_params("latest", checkpoint.fingerprint_check({"a": 2}, "here"))
  reader.close()
  assert RunCheckpoints(tmp_path / "empty").read_params("latest") is None


def test_a_reader_skips_an_unreadable_checkpoint_and_moves_nothing(tmp_path, caplog):
  tx = optax.adamw(1e-3)
  ckpts = RunCheckpoints(tmp_path / "ckpt")
  ckpts.save_latest(1, _state(1, tx), {})
  ckpts.save_latest(2, _state(2, tx), {})
  ckpts.close()
  newest = tmp_path / "ckpt" / "latest" / "2" / "state"
  for f in newest.rglob("*"):
    if f.is_file() and f.stat().st_size > 64:
      f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])  # truncate every data file
  before = sorted(str(p) for p in (tmp_path / "ckpt").rglob("*"))
  with caplog.at_level("WARNING"):
    params = RunCheckpoints(tmp_path / "ckpt").read_params("latest")
  jax.tree.map(np.testing.assert_array_equal, params, _state(1, tx).params)
  assert any("unreadable" in r.getMessage() for r in caplog.records)
  assert sorted(str(p) for p in (tmp_path / "ckpt").rglob("*")) == before  # nothing moved


def test_a_missing_stage_is_a_clear_error(tiny_config):
  from dpr_jax.data.prepare import prepare

  config = tiny_config()
  data = prepare(config.data)
  with pytest.raises(CheckpointError, match=r"no checkpoint in \S+/stage1/checkpoints; run stage 1"):
    checkpoint.backbone_params(config, data)
  with pytest.raises(CheckpointError, match=r"no checkpoint in \S+/stage3/checkpoints; train the"):
    checkpoint.head_params(config, data)


def test_serving_imports_nothing_from_training():
  code = ("import sys, dpr_jax.serve.recommender, dpr_jax.serve.http, dpr_jax.recommend;"
          "print(sorted(m for m in sys.modules if m.startswith('dpr_jax.train')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


# ================================================================================ the loop
class _Checkpoints:
  directory = "nowhere"
  waited = False

  def wait(self):
    self.waited = True


def _counting_steps(losses):
  """A stage whose step adds 1 to ``state.step`` and reports the given loss of each step."""

  def steps(state, batch, step):
    n = batch["x"].shape[0]
    return (TrainState(state.step + n, state.params, state.opt_state),
            {"loss": jnp.asarray(losses[step:step + n], jnp.float32), "x": batch["x"][:, 0]})

  return steps


class _Batches(list):
  """Host batches [S, B=1] of step numbers, as ``pipeline.iterate`` reads a tf.data dataset."""

  def as_numpy_iterator(self):
    return iter(self)


def _dataset(total, spc, start=0):
  return _Batches({"x": np.arange(s, s + spc)[:, None].astype(np.float32)}
                  for s in range(start, total, spc))


def test_the_loop_calls_its_hook_every_n_steps_and_at_the_end_with_the_steps_since():
  mesh = sharding.make_mesh(1, 1)
  seen = []

  def at_point(point):
    seen.append((point.step, point.metrics["x"].tolist(), point.mean("loss")))
    return {}, False

  state = TrainState(jnp.zeros((), jnp.int32), {}, ())
  losses = np.arange(10.0)
  out = loop.run(state, _dataset(10, 2), _counting_steps(losses), mesh, start=0, total=10,
                 steps_per_call=2, every=4, title="t", show=False, at_point=at_point,
                 ckpts=_Checkpoints(), lr_key="train.lr")
  assert int(out.step) == 10
  assert seen == [(4, [0, 1, 2, 3], 1.5), (8, [4, 5, 6, 7], 5.5), (10, [8, 9], 8.5)]


def test_the_loop_stops_when_the_hook_says_so_and_resumes_midway():
  mesh = sharding.make_mesh(1, 1)
  state = TrainState(jnp.asarray(4, jnp.int32), {}, ())
  points = []

  def at_point(point):
    points.append(point.step)
    return {}, point.step >= 8

  out = loop.run(state, _dataset(12, 2, start=4), _counting_steps(np.zeros(12)), mesh, start=4,
                 total=12, steps_per_call=2, every=2, title="t", show=False, at_point=at_point,
                 ckpts=_Checkpoints(), lr_key="train.lr")
  assert points == [6, 8] and int(out.step) == 8


def test_a_non_finite_loss_stops_the_loop_after_the_last_checkpoint_is_written():
  mesh = sharding.make_mesh(1, 1)
  ckpts = _Checkpoints()
  losses = np.array([1.0, 1.0, 1.0, np.nan, 1.0, 1.0])
  called = []
  with pytest.raises(loop.NonFiniteLoss, match=r"stage 2 \(x\): loss became non-finite before"
                                               r" step 4.*--config.stage2.lr"):
    loop.run(TrainState(jnp.zeros((), jnp.int32), {}, ()), _dataset(6, 2),
             _counting_steps(losses), mesh, start=0, total=6, steps_per_call=2, every=2,
             title="stage 2 (x)", show=False, at_point=lambda p: (called.append(p.step), ({}, False))[1],
             ckpts=ckpts, lr_key="stage2.lr")
  assert called == [2] and ckpts.waited


def test_parser_fingerprint_leaves_out_later_settings_at_their_earlier_value():
  """A parser checkpoint from before a setting existed still restores at the value it was
  trained with (``config.EARLIER_PARSER_VALUES``); another value is another parser -- also for
  ``parser.clause_cue``, whose default changed after checkpoints existed."""
  from dpr_jax.config import default_config

  config = default_config()
  config.parser.clause_cue = False  # what every parser before the setting was
  tags = ["Comedy", "Horror"]
  plain = checkpoint.parser_fingerprint(config, tags)
  assert not {"composed_share", "input_norm", "negation_cue", "clause_cue",
              "members"} & set(plain["parser"])
  for field, value in (("composed_share", 0.5), ("input_norm", True), ("negation_cue", False),
                       ("clause_cue", True)):
    config.parser[field] = value
    changed = checkpoint.parser_fingerprint(config, tags)
    assert changed["parser"][field] == value
    assert field in checkpoint.fingerprint_differences(plain, changed)
  assert checkpoint.parser_fingerprint(default_config(), tags)["parser"]["clause_cue"] is True


def test_a_parser_from_before_the_clause_cue_default_is_refused_with_the_flag_to_read_it():
  """A parser checkpoint saved before ``parser.clause_cue`` existed (its fingerprint lacks it)
  is refused under today's default with the setting's earlier value and the flag that restores
  it, and is accepted with that flag."""
  from dpr_jax.config import default_config

  tags = ["Comedy", "Horror"]
  earlier = default_config()
  earlier.parser.clause_cue = False
  saved = {"fingerprint": checkpoint.parser_fingerprint(earlier, tags)}
  assert "clause_cue" not in saved["fingerprint"]["parser"]
  check = checkpoint.fingerprint_check(checkpoint.parser_fingerprint(default_config(), tags),
                                       "runs/old/stage2/parser")
  with pytest.raises(CheckpointError) as e:
    check(saved)
  assert "parser.clause_cue: False -> True" in str(e.value)
  assert "--config.parser.clause_cue=False" in str(e.value)
  checkpoint.fingerprint_check(checkpoint.parser_fingerprint(earlier, tags), "x")(saved)


def test_a_run_config_saved_before_a_parser_setting_existed_loads_its_earlier_value(tmp_path):
  """``load_run_config``: a config.json without ``parser.clause_cue`` (a run trained before it)
  reads with False, what that run's parser was trained with; one that names it keeps it; other
  missing keys keep today's defaults."""
  import json

  from dpr_jax import config as config_lib

  config = config_lib.default_config()
  config.run.dir = str(tmp_path / "run")
  config_lib.save_run_config(config, tmp_path)
  values = json.loads((tmp_path / config_lib.CONFIG_FILE).read_text())
  assert values["parser"]["clause_cue"] is True
  assert config_lib.load_run_config(tmp_path).parser.clause_cue is True
  del values["parser"]["clause_cue"], values["parser"]["hidden"]
  (tmp_path / config_lib.CONFIG_FILE).write_text(json.dumps(values))
  loaded = config_lib.load_run_config(tmp_path)
  assert loaded.parser.clause_cue is False
  assert loaded.parser.hidden == config.parser.hidden


def test_parser_fingerprint_names_another_text_encoder():
  """A parser reads its encoder's token states: one trained on another encoder's is another
  parser (a clear refusal, not a shape error); the default encoder leaves the fingerprint as it
  always was."""
  from dpr_jax.config import default_config

  config = default_config()
  plain = checkpoint.parser_fingerprint(config, ["Comedy"])
  assert "text_encoder" not in plain
  config.dpr.text_encoder = "/models/all-mpnet-base-v2"
  other = checkpoint.parser_fingerprint(config, ["Comedy"])
  assert "text_encoder: 'unset' -> '/models/all-mpnet-base-v2'" in (
      checkpoint.fingerprint_differences(plain, other))
