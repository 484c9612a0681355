"""The compositional request generator: grammar data, split hygiene, labels, determinism, noise."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from dpr_jax.prompts import generator as g

DOMAINS = ("ml-1m", "mind")
MIN_CONSTRUCTIONS = {"positive": 30, "negative": 30, "combined": 25, "vague": 15}
SMALL_MIND_TAGS = ("middleeast", "northamerica")
NEGATIONS = ("no", "not", "don't", "never", "without", "but", "nothing", "none", "except", "instead",
             "minus", "less", "fewer", "rather", "avoid", "skip", "hate", "stop", "enough", "tired",
             "sick", "isn't", "doesn't", "can't", "couldn't", "whatsoever", "dealbreaker", "hide",
             "mute", "block", "steer", "spare", "hold", "away", "pass", "done", "anything")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")


@pytest.fixture(scope="module")
def train_ml():
  return g.generate("ml-1m", "train", 2000, 0)


@pytest.fixture(scope="module")
def clean_and_noisy():
  return g.generate("ml-1m", "train", 2000, 5, noise=0.0), g.generate("ml-1m", "train", 2000, 5, noise=1.0)


def _texts(domain: str, split: str) -> tuple[set[str], set[str]]:
  forms = {f for t in g.DOMAIN_TAGS[domain] for f in g.surface_forms(domain, t, split)}
  forms |= {f for t in g.DOMAIN_TAGS[domain] for f in g.compound_forms(domain, t, split)}
  cons = {c for k in g.KINDS for c in g.constructions(domain, k, split)}
  return forms, cons


@pytest.mark.parametrize("domain", DOMAINS)
def test_grammar_loads_and_meets_minimums(domain):
  grammar = g.load_grammar(domain)
  assert set(grammar["surface_forms"]) == set(g.DOMAIN_TAGS[domain])  # every tag has forms, none unknown
  for kind, minimum in MIN_CONSTRUCTIONS.items():
    train, heldout = g.constructions(domain, kind, "train"), g.constructions(domain, kind, "heldout")
    assert len(train) + len(heldout) >= minimum, kind
    assert 0.2 <= len(heldout) / (len(train) + len(heldout)) <= 0.4, kind
  for tag in g.DOMAIN_TAGS[domain]:
    train, heldout = g.surface_forms(domain, tag, "train"), g.surface_forms(domain, tag, "heldout")
    assert len(heldout) >= 1, tag
    if domain == "ml-1m":
      assert len(train) + len(heldout) >= 12 and len(train) >= 6, tag
    elif tag in SMALL_MIND_TAGS:
      assert len(train) + len(heldout) >= 4 and len(train) >= 3, tag
    else:
      assert len(train) + len(heldout) >= 10 and len(train) >= 6, tag
  # Two-tag slots exist in both directions.
  assert any("{X2}" in c for c in g.constructions(domain, "positive", "train"))
  assert any("{Y2}" in c for c in g.constructions(domain, "negative", "train"))
  assert any("{N}" in c for k in g.KINDS for c in g.constructions(domain, k, "train"))


@pytest.mark.parametrize("domain", DOMAINS)
def test_splits_are_disjoint(domain):
  train_forms, train_cons = _texts(domain, "train")
  held_forms, held_cons = _texts(domain, "heldout")
  assert train_forms and held_forms and train_cons and held_cons
  assert not train_forms & held_forms
  assert not train_cons & held_cons


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("split", g.SPLITS)
def test_generate_uses_only_its_split(domain, split):
  forms, cons = _texts(domain, split)
  requests = g.generate(domain, split, 2000, 0)
  assert len(requests) == 2000
  assert {r.construction for r in requests} <= cons
  assert {f for r in requests for f in r.forms} <= forms
  # The split is well covered, not just a corner of it.
  assert len({r.construction for r in requests}) >= 0.9 * len(cons)
  assert {r.kind for r in requests} == set(g.KINDS)


def test_determinism(train_ml):
  assert g.generate("ml-1m", "train", 2000, 0) == train_ml
  assert g.generate("ml-1m", "train", 2000, 1) != train_ml
  assert g.generate("mind", "heldout", 50, 7) == g.generate("mind", "heldout", 50, 7)


@pytest.mark.parametrize("domain", DOMAINS)
def test_labels_match_text_and_kind(domain):
  tag_of = {f: t for t in g.DOMAIN_TAGS[domain] for s in g.SPLITS
            for f in g.surface_forms(domain, t, s) + g.compound_forms(domain, t, s)}
  for split in g.SPLITS:
    for r in g.generate(domain, split, 1000, 3, noise=0.0):
      assert r.kind in g.KINDS
      assert {"positive": (True, False), "negative": (False, True), "combined": (True, True),
              "vague": (False, False)}[r.kind] == (bool(r.want), bool(r.avoid)), r
      assert not set(r.want) & set(r.avoid), r
      assert len(set(r.want + r.avoid)) == len(r.want) + len(r.avoid), r
      assert len(r.forms) == len(r.want) + len(r.avoid)
      assert tuple(tag_of[f] for f in r.forms) == r.want + r.avoid, r
      for form in r.forms:
        assert form.lower() in r.text.lower(), r
      assert "{" not in r.text and "}" not in r.text, r
      if "{N}" in r.construction:
        assert any(n in r.text for n in g.load_grammar(domain)["noun"]), r


def test_tags_argument_restricts_and_counts_shares():
  requests = g.generate("ml-1m", "train", 300, 0, tags=["Horror", "Comedy"], noise=0.0)
  assert {t for r in requests for t in r.want + r.avoid} == {"Horror", "Comedy"}
  # One tag: no construction needs two tags, so no combined and no {X2}/{Y2}.
  one = g.generate("ml-1m", "train", 300, 0, tags=["Horror"], noise=0.0)
  assert {r.kind for r in one} == {"positive", "negative", "vague"}
  assert all(r.want + r.avoid in ((), ("Horror",)) for r in one)
  only_vague = g.generate("mind", "train", 50, 0, kind_shares=(0, 0, 0, 1))
  assert {r.kind for r in only_vague} == {"vague"}
  mostly_negative = g.generate("mind", "train", 1000, 0, kind_shares=(0.1, 0.8, 0.05, 0.05))
  assert 0.74 < sum(r.kind == "negative" for r in mostly_negative) / 1000 < 0.86
  with pytest.raises(ValueError, match="Zombie"):
    g.generate("ml-1m", "train", 5, 0, tags=["Zombie"])
  with pytest.raises(ValueError, match="split"):
    g.generate("ml-1m", "test", 5, 0)
  with pytest.raises(ValueError, match="domain"):
    g.load_grammar("netflix")


def test_label_matrix():
  tags = g.DOMAIN_TAGS["ml-1m"]
  requests = [g.GeneratedRequest("a", ("Horror",), ("Comedy", "War"), "combined", "", ("x", "y", "z")),
              g.GeneratedRequest("b", (), (), "vague", "", ())]
  m = g.label_matrix(requests, tags)
  assert m.dtype == np.int8 and m.shape == (2, len(tags))
  expected = np.zeros((2, len(tags)), np.int8)
  expected[0, tags.index("Horror")] = 1
  expected[0, tags.index("Comedy")] = 2
  expected[0, tags.index("War")] = 2
  np.testing.assert_array_equal(m, expected)
  generated = g.generate("ml-1m", "train", 200, 0)
  m = g.label_matrix(generated, tags)
  assert ((m == 1).sum(1) == [len(r.want) for r in generated]).all()
  assert ((m == 2).sum(1) == [len(r.avoid) for r in generated]).all()
  with pytest.raises(ValueError, match="Horror"):
    g.label_matrix(requests, ("Comedy", "War"))


def test_noise_is_independent_of_structure_and_keeps_negations(clean_and_noisy):
  clean, noisy = clean_and_noisy
  changed = 0
  for c, n in zip(clean, noisy):
    assert (c.construction, c.forms, c.want, c.avoid, c.kind) == (n.construction, n.forms, n.want, n.avoid, n.kind)
    changed += c.text != n.text
    clean_tokens, noisy_tokens = _TOKEN.findall(c.text.lower()), _TOKEN.findall(n.text.lower())
    for word in NEGATIONS:
      assert noisy_tokens.count(word) >= clean_tokens.count(word), (word, c.text, n.text)
  assert changed > 0.8 * len(clean)
  assert set(NEGATIONS) <= g.PROTECTED | {w for w in NEGATIONS if sum(ch.isalpha() for ch in w) < 5}


def _squash(s: str) -> str:
  return re.sub(r"[^a-z0-9]", "", s.lower())


def _within_one_edit(a: str, b: str) -> bool:
  """a and b differ by at most one drop, insert, substitution or adjacent swap."""
  if a == b:
    return True
  if abs(len(a) - len(b)) > 1:
    return False
  i = 0
  while i < min(len(a), len(b)) and a[i] == b[i]:
    i += 1
  if len(a) == len(b):
    return a[i + 1:] == b[i + 1:] or (a[i:i + 2] == b[i:i + 2][::-1] and a[i + 2:] == b[i + 2:])
  return a[i + 1:] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1:]


def test_noisy_forms_keep_their_first_letters_and_at_most_one_typo(clean_and_noisy):
  clean, noisy = clean_and_noisy
  typos = 0
  for c, n in zip(clean[:600], noisy[:600]):
    text = _squash(n.text)
    for form in n.forms:
      f = _squash(form)
      if f in text:
        continue
      typos += 1
      starts = [m.start() for m in re.finditer("(?=" + re.escape(f[:3]) + ")", text)]
      assert any(_within_one_edit(f, text[s:s + L]) for s in starts for L in (len(f) - 1, len(f), len(f) + 1)), \
          (form, c.text, n.text)
  assert typos > 0  # typos do land inside slot fillers, after their first 3 letters


def test_noise_effects_all_occur():
  clean = g.generate("mind", "train", 1000, 11, noise=0.0)
  noisy = g.generate("mind", "train", 1000, 11, noise=0.3)
  changed = [(c.text, n.text) for c, n in zip(clean, noisy) if c.text != n.text]
  assert 0.1 * len(clean) < len(changed) < 0.35 * len(clean)
  fillers = set(g.FILLERS_START) | set(g.FILLERS_END)
  assert any(any(n.startswith(f + " ") or n.endswith(" " + f) for f in fillers) for _, n in changed)
  assert any(c[-1] in "?!." and n[-1] not in "?!." for c, n in changed)
  assert any(c != c.lower() and n == n.lower() for c, n in changed)
  assert any(_squash(c) != _squash(n) and len(_squash(n)) in (len(_squash(c)) - 1, len(_squash(c)) + 1,
                                                              len(_squash(c))) for c, n in changed)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["surface_forms"].__setitem__("Zombie", [{"text": "zombie stuff", "split": "train"}]), "Zombie"),
    (lambda d: d["surface_forms"]["Horror"].append({"text": "spooky", "split": "test"}), "split"),
    (lambda d: d["constructions"]["positive"].append({"text": "i want some", "split": "train"}), r"\{X\}"),
    (lambda d: d["constructions"]["negative"].append({"text": "no {Z}", "split": "train"}), r"\{Z\}"),
    (lambda d: d["constructions"]["vague"].append({"text": "{X} maybe", "split": "train"}), r"\{X\}"),
    (lambda d: d["surface_forms"]["Comedy"].append({"text": "gore", "split": "heldout"}), "gore"),
    (lambda d: d["constructions"]["vague"].append({"text": "something funny", "split": "train"}), "funny"),
    (lambda d: d["surface_forms"]["Comedy"].append({"text": "gore fests", "split": "train"}), "contains 'gore'"),
    (lambda d: d["constructions"]["combined"].append({"text": "{X} but not {Y2}", "split": "train"}), r"\{Y\}"),
    (lambda d: d["compound_forms"]["Horror"].append({"text": "scary stuff", "split": "train"}), "one lower-case word"),
    (lambda d: d["compound_forms"]["Comedy"].append({"text": "slasher", "split": "train"}), "appears twice"),
    (lambda d: d["compound_forms"]["Comedy"].append({"text": "zombies", "split": "train"}), "contains 'zombies'"),
    (lambda d: d["compound_forms"].__setitem__("Zombie", [{"text": "undead", "split": "train"}]), "Zombie"),
    (lambda d: d["compound_forms"].__setitem__("War", [{"text": "battle", "split": "heldout"}]),
     "no train compound form"),
    (lambda d: d.__setitem__("extra", {}), "compound_forms"),
    (lambda d: d["compound_forms"]["Horror"].append({"text": "hauntings", "split": "heldout"}), "surface form is train"),
])
def test_validation_names_the_problem(mutate, message):
  data = copy.deepcopy(g.load_grammar("ml-1m"))
  g.validate_grammar(copy.deepcopy(data), "ml-1m")
  mutate(data)
  with pytest.raises(ValueError, match=message):
    g.validate_grammar(data, "ml-1m")


def test_files_are_plain_json():
  import importlib.resources
  for domain in DOMAINS:
    path = importlib.resources.files("dpr_jax.prompts") / "generator" / f"{domain}.json"
    assert json.loads(path.read_text(encoding="utf-8")) == g.load_grammar(domain)


def test_forms_from_crosses_the_splits():
  """``forms_from`` fills held-out constructions with training forms (and vice versa)."""
  tags = g.DOMAIN_TAGS["ml-1m"]
  held = set(g.constructions("ml-1m", "positive", "heldout")) | set(
      g.constructions("ml-1m", "negative", "heldout")) | set(
      g.constructions("ml-1m", "combined", "heldout")) | set(
      g.constructions("ml-1m", "vague", "heldout"))
  train_forms = {f for t in tags for f in g.surface_forms("ml-1m", t, "train") + g.compound_forms("ml-1m", t, "train")}
  reqs = g.generate("ml-1m", "heldout", 200, 0, forms_from="train", noise=0.0)
  assert all(r.construction in held for r in reqs)
  assert all(f in train_forms for r in reqs for f in r.forms) and any(r.forms for r in reqs)
  with pytest.raises(ValueError, match="split"):
    g.generate("ml-1m", "heldout", 1, 0, forms_from="test")


@pytest.mark.parametrize("split", g.SPLITS)
def test_composed_requests_join_a_positive_and_a_negative_construction_of_the_split(split):
  tag_of = {f: t for t in g.DOMAIN_TAGS["ml-1m"] for s in g.SPLITS
            for f in g.surface_forms("ml-1m", t, s) + g.compound_forms("ml-1m", t, s)}
  pos, neg = (set(g.constructions("ml-1m", k, split)) for k in ("positive", "negative"))
  reqs = g.generate("ml-1m", split, 1500, 0, composed=1.0, noise=0.0)
  combined = [r for r in reqs if r.kind == "combined"]
  assert combined and all(r.parts for r in combined)
  assert not any(r.parts for r in reqs if r.kind != "combined")
  for r in combined:
    assert r.parts[0] in pos and r.parts[1] in neg, r  # never a construction of the other split
    assert r.want and r.avoid and tuple(tag_of[f] for f in r.forms) == r.want + r.avoid, r
    assert all(f in r.text.lower() for f in r.forms), r
  # Both orders occur, and the joined texts are not one template's.
  firsts = {r.construction.startswith(r.parts[0].strip()[:-1]) for r in combined}
  assert firsts == {True, False}
  assert len({r.construction for r in combined}) > 0.8 * len(combined)
  # A share of it: about that share of the combined requests.
  half = [r for r in g.generate("ml-1m", split, 3000, 1, composed=0.5) if r.kind == "combined"]
  assert 0.4 < np.mean([bool(r.parts) for r in half]) < 0.6
  assert g.generate("ml-1m", split, 300, 2, composed=0.0) == g.generate("ml-1m", split, 300, 2)
  with pytest.raises(ValueError, match="composed"):
    g.generate("ml-1m", split, 1, 0, composed=1.5)


def test_compose_keeps_a_sentence_end_and_lowers_a_capital_after_a_joiner():
  assert g.compose("any {X} picks?", "skip the {Y} ones", ", ") == "any {X} picks? skip the {Y} ones"
  assert g.compose("Show me {X}", "Please no {Y}", ", but ") == "Show me {X}, but please no {Y}"
  assert g.compose("{X} please", "I'm sick of {Y}", "; ") == "{X} please; I'm sick of {Y}"
  assert g.compose("{X} please", "No {Y}", ". ") == "{X} please. No {Y}"


def test_composed_single_requests_are_two_clauses_of_their_kind():
  pos, neg = (set(g.constructions("ml-1m", k, "train")) for k in ("positive", "negative"))
  reqs = g.generate("ml-1m", "train", 1500, 3, composed_single=1.0, noise=0.0)
  for kind, cons in (("positive", pos), ("negative", neg)):
    mine = [r for r in reqs if r.kind == kind]
    assert mine and all(len(r.parts) == 2 and set(r.parts) <= cons for r in mine)
    for r in mine:
      named = r.want if kind == "positive" else r.avoid
      assert len(named) == 2 and not (r.avoid if kind == "positive" else r.want), r
      assert all(f in r.text.lower() for f in r.forms), r
  assert not any(r.parts for r in reqs if r.kind in ("combined", "vague"))
  assert g.generate("ml-1m", "train", 300, 2, composed=0.5) == g.generate(
      "ml-1m", "train", 300, 2, composed=0.5, composed_single=0.0)


def test_compound_slots_take_one_word_forms_of_their_split():
  """``{Y}-free``: the slot before a hyphen takes a compound form of its split and tag; the labels
  follow the slot (``-free`` on an X slot would still be a want: the kind decides, not the
  suffix); a grammar without compound constructions (MIND) draws no compound form."""
  assert g.compound_slots("{X}, but {Y}-free") == {"Y"}
  assert g.compound_slots("make it {Y}-free and {Y2}-free") == {"Y", "Y2"}
  assert g.compound_slots("{X} - no {Y}") == frozenset()
  for split in g.SPLITS:
    requests = g.generate("ml-1m", split, 3000, 11, noise=0.0)
    compound = [r for r in requests if g.compound_slots(r.construction)]
    assert len(compound) > 50, split
    assert {r.kind for r in compound} == {"positive", "negative", "combined"}
    for r in compound:
      slots = g._tag_slots(r.construction)  # pylint: disable=protected-access
      for slot, form, tag in zip(slots, r.forms, r.want + r.avoid):
        pool = g.compound_forms if slot in g.compound_slots(r.construction) else g.surface_forms
        assert form in pool("ml-1m", tag, split), (r, slot)
        if slot in g.compound_slots(r.construction):
          assert re.search(re.escape(form) + "-[a-z]", r.text), r
    # Every "-free" request of a negative construction labels only avoided tags.
    assert all(not r.want for r in compound if r.kind == "negative")
  assert not any(g.compound_forms("mind", t, s) for t in g.DOMAIN_TAGS["mind"] for s in g.SPLITS)


def test_typos_never_touch_a_protected_part_of_a_hyphenated_word():
  noisy = g.generate("ml-1m", "train", 4000, 12, noise=1.0)
  clean = g.generate("ml-1m", "train", 4000, 12, noise=0.0)
  free = [(c, n) for c, n in zip(clean, noisy) if "}-free" in c.construction]
  assert len(free) > 100
  for c, n in free:
    assert n.text.lower().count("-free") == c.text.lower().count("-free"), (c.text, n.text)
