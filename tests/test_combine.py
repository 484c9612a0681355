"""Combined requests: the splitter on every template, and composing the parts' offsets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax.models.dpr import DPRHead, compose
from dpr_jax.prompts import templates
from dpr_jax.prompts.combine import split_request


@pytest.mark.parametrize("domain", templates.DOMAINS)
def test_every_held_out_combined_phrasing_splits_into_its_two_wishes(domain):
  """Each part names its own tag, and depends only on its own tag: the positive part of
  (g+, g-) is the same for every g-, the negative part the same for every g+."""
  tags = templates.tags_for(domain)
  form = lambda t: templates.SURFACE_FORMS[domain][t][0].lower()
  for template in templates.COMBINED[domain]:
    pos_of, neg_of = {}, {}
    for pos in tags:
      for neg in tags:
        if pos == neg:
          continue
        text = templates.combined_prompt(domain, template, pos, neg)
        r = split_request(text)
        assert r.is_combined, text
        assert form(pos) in r.positive.lower() and form(neg) in r.negative.lower(), (text, r)
        assert pos_of.setdefault(pos, r.positive) == r.positive, (text, r)
        assert neg_of.setdefault(neg, r.negative) == r.negative, (text, r)


@pytest.mark.parametrize("domain", templates.DOMAINS)
def test_single_wish_prompts_stay_whole(domain):
  """Every explicit template (both splits) and every held-out nuanced prompt is one wish: its one
  part is the unchanged text, on the side of its family."""
  tags = templates.tags_for(domain)
  cases = [(p, fam) for fam in ("positive", "negative") for split in templates.SPLITS
           for p in templates.prompts_for(domain, tags, fam, split)]
  cases += [(p, "nuanced") for p in templates.prompts_for(domain, tags, "nuanced", "eval")]
  for prompt, family in cases:
    r = split_request(prompt.text)
    assert r.parts == [(prompt.text, -1 if family == "negative" else 1)], (prompt.text, r)


@pytest.mark.parametrize("text, positive, negative", [
    ("a comedy, but no romance", "a comedy", "no romance"),
    ("sci-fi or fantasy, nothing scary", "sci-fi or fantasy", "nothing scary"),
    ("I want comedies without romance", "I want comedies", "without romance"),
    ("Comedy, yes; romance, no", "Comedy", "no romance"),
    ("anything but horror, please", "", "anything but horror, please"),
    ("  more   westerns  ", "more westerns", ""),
    ("I'm not feeling dramas today, show me something else", "",
     "I'm not feeling dramas today, show me something else"),
])
def test_split_rules(text, positive, negative):
  r = split_request(text)
  assert (r.positive, r.negative) == (positive, negative)


def test_compose_adds_offsets_and_ignores_absent_parts():
  head = DPRHead(embed_dim=8, num_tags=3, adapter_hidden=16, num_experts=4, top_k=1,
                 expert_hidden=16)
  h = jax.random.normal(jax.random.key(0), (5, 8))
  p, q = jax.random.normal(jax.random.key(1), (2, 5, 12))
  params = head.init(jax.random.key(2), h, p, jnp.ones(5, bool))["params"]
  run = lambda x, on: (lambda o: (o.user, o.tag_bias))(head.apply({"params": params}, h, x, on))
  on, off = jnp.ones(5, bool), jnp.zeros(5, bool)
  (u1, b1), (u2, b2) = run(p, on), run(q, on)
  user, bias = compose(h, [(u1, b1), (u2, b2)])
  np.testing.assert_allclose(user, u1 + u2 - h, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(bias, b1 + b2, rtol=1e-6, atol=1e-6)
  # A part without a prompt changes nothing: one-part requests are exactly the single steer.
  user, bias = compose(h, [(u1, b1), run(q, off)])
  np.testing.assert_array_equal(user, u1)
  np.testing.assert_array_equal(bias, b1)
