"""What the rewrites before the parsers (``Recommender``'s ``_PLAIN``: kids away, keep,
instead, litotes, breaks) leave of the generator's requests: the parsers were trained on its
training split and read it as typed, so no rule may rewrite it (rule (c) of each change,
``reports/experiments.md`` session 27); three of them leave its held-out split as typed too."""

import pytest

from dpr_jax.prompts import generator
from dpr_jax.serve import breaks, kids_away, litotes
from dpr_jax.serve.recommender import _PLAIN


@pytest.fixture(scope="module")
def generated():
  """{(domain, split): texts}, generated once for every rule."""
  return {(d, s): [r.text for r in generator.generate(d, s, n, 0)]
          for d in ("ml-1m", "mind") for s, n in (("train", 6000), ("heldout", 3000))}


@pytest.mark.parametrize("rule", _PLAIN, ids=lambda f: f.__module__.rsplit(".", 1)[-1])
def test_no_rule_rewrites_a_generated_training_request(rule, generated):
  for domain in ("ml-1m", "mind"):
    texts = generated[domain, "train"]
    assert [t for t in texts if rule(t) != t] == [], domain


@pytest.mark.parametrize("rule", [kids_away.without, litotes.as_wish, breaks.as_avoid],
                         ids=["kids_away", "litotes", "breaks"])
def test_these_rules_leave_the_held_out_split_as_typed_too(rule, generated):
  for domain in ("ml-1m", "mind"):
    texts = generated[domain, "heldout"]
    assert [t for t in texts if rule(t) != t] == [], domain


def test_the_training_split_says_keep_as_an_avoid(generated):
  """The keep rule's test above is not empty: ML-1M's training requests say "keep" (in avoids),
  MIND's in "keep me posted"."""
  for domain in ("ml-1m", "mind"):
    assert sum("keep" in t.lower() for t in generated[domain, "train"]) > 20, domain
