"""The everyday-language evaluation set and the EVERYDAY task built from it."""

import numpy as np
import pytest

from dpr_jax.prompts import everyday, templates


@pytest.mark.parametrize("domain", templates.DOMAINS)
def test_the_set_has_its_counts_and_only_the_domains_tags(domain):
  requests = everyday.load(domain)
  counts = {k: sum(r.kind == k for r in requests) for k in everyday.KINDS}
  assert counts == {"positive": 40, "negative": 40, "combined": 40, "vague": 20}
  assert len({r.id for r in requests}) == len(requests)
  assert len({r.text.lower() for r in requests}) == len(requests)
  tags = set(templates.tags_for(domain))
  assert all(set(r.want + r.avoid) <= tags for r in requests)


def test_a_mislabelled_request_is_refused():
  tags = set(templates.tags_for("ml-1m"))
  for bad in (everyday.EverydayRequest("a", "negative", "no comedy", ("Comedy",), ()),
              everyday.EverydayRequest("b", "combined", "x", ("Comedy",), ("Comedy",)),
              everyday.EverydayRequest("c", "positive", "x", ("Dinosaurs",), ()),
              everyday.EverydayRequest("d", "sad", "x", (), ())):
    with pytest.raises(ValueError, match=bad.id):
      everyday._check(bad, tags)


def test_everyday_tasks_pick_users_by_the_requests_own_tags(tiny_config):
  from dpr_jax.data.prepare import prepare
  from dpr_jax.eval import steering as steering_eval
  from dpr_jax.prompts.reader import rules_reader

  data = prepare(tiny_config().data)
  g, h = data.tag_names[0], data.tag_names[1]
  requests = (everyday.EverydayRequest("p", "positive", f"got any {g} ones", (g,), ()),
              everyday.EverydayRequest("n", "negative", f"no {h} please", (), (h,)),
              everyday.EverydayRequest("m", "negative", f"i'm so sick of {h}", (), (h,)),
              everyday.EverydayRequest("c", "combined", f"{g} but no {h}", (g,), (h,)),
              everyday.EverydayRequest("v", "vague", "surprise me", (), ()),
              everyday.EverydayRequest("x", "positive", "dinosaurs", ("NotATag",), ()))
  rng = np.random.default_rng(0)
  top10 = rng.integers(1, data.num_items + 1, (data.num_users, 10))
  embed = lambda texts: rng.normal(size=(len(texts), 5)).astype(np.float32)  # noqa: E731
  tasks, read_ok = steering_eval.everyday_tasks(data, "test", requests, top10, 0,
                                                rules_reader(embed))
  _, targets, _ = data.eval_split("test")
  share = steering_eval.tag_share(data, "test")
  gi, hi = 0, 1
  pos, neg, comb = tasks["EVERYDAY+"], tasks["EVERYDAY-"], tasks["EVERYDAY+-"]
  assert 0 < len(pos.users) <= steering_eval.EVERYDAY_USERS  # "x" names no tag of the data
  assert np.all(data.item_tags[targets[pos.users], gi])
  assert np.all(share[pos.users, gi] < steering_eval.OFF_HABIT_SHARE)
  shown = data.item_tags[np.minimum(top10, data.num_items)].sum(1)[:, hi]
  for task in (neg, comb):
    assert len(task.users) and not np.any(data.item_tags[targets[task.users], hi])
    assert np.all(shown[task.users] >= steering_eval.COMBINED_MIN_COUNT)
  assert np.all(neg.tag == hi) and np.all(comb.tag == gi) and np.all(comb.tag2 == hi)
  # Parts as the recommender reads them: each row's polarity follows the splitter.
  assert np.all(comb.prompt >= 0) and np.all(comb.prompt2 >= 0)
  assert np.all(comb.negative[comb.prompt2]) and not np.any(comb.negative[comb.prompt])
  assert len(tasks["EVERYDAY?"].users) == min(data.num_users, steering_eval.EVERYDAY_USERS)
  assert read_ok["EVERYDAY+"] == 1.0 and read_ok["EVERYDAY+-"] == 1.0
  assert 0.0 <= read_ok["EVERYDAY-"] <= 1.0
