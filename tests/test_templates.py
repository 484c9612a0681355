"""Tests of the steering prompts (dpr_jax.prompts.templates): counts, splits, wording, API."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

from dpr_jax.prompts import templates as tpl

ML1M_GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
)
MIND_CATEGORIES = (
    "autos", "entertainment", "finance", "foodanddrink", "health", "kids", "lifestyle",
    "middleeast", "movies", "music", "news", "northamerica", "sports", "travel", "tv", "video",
    "weather",
)
MIND_SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mind-sample"

EXPLICIT = ("positive", "negative")
NEGATION = re.compile(
    r"n't|\b(no|not|never|none|nothing|without|avoid|skip|stop|fewer|less|enough|sick|tired|"
    r"hate|rather|instead|except|hide|leave out|anything but|keep .+ out of)\b", re.IGNORECASE)
# Nouns a domain's templates use for its items; "news" is also the name of a MIND category.
HEAD_NOUNS = {"ml-1m": (), "mind": ("news",)}


def _norm(text: str) -> str:
  """Lower case, possessives and apostrophes dropped, hyphens as spaces."""
  text = text.lower().replace("'s", "").replace("\u2019s", "")
  return re.sub(r"\s+", " ", re.sub(r"['\u2019]", "", text).replace("-", " "))


def _names(domain: str, tag: str) -> list[str]:
  """The tag name and its surface forms, normalised."""
  return [_norm(tag)] + [_norm(s) for s in tpl.SURFACE_FORMS[domain][tag]]


def _mentions(text: str, name: str) -> bool:
  """Whether normalised ``name`` occurs in ``text`` as whole words (plural forms included)."""
  plural = name[:-1] + "ies" if name.endswith("y") else name + "es"
  pattern = rf"\b({re.escape(name)}|{re.escape(name)}s|{re.escape(plural)})\b"
  return re.search(pattern, _norm(text)) is not None


def _explicit_texts(domain: str, family: str, split: str) -> set[str]:
  return {p.text for p in tpl.prompts_for(domain, tpl.tags_for(domain), family, split)}


# ------------------------------------------------------------------------------------ tags, forms


def test_tags() -> None:
  assert tpl.DOMAINS == ("ml-1m", "mind")
  assert tpl.tags_for("ml-1m") == ML1M_GENRES
  assert tpl.tags_for("mind") == MIND_CATEGORIES


def test_mind_sample_categories_are_covered() -> None:
  news = MIND_SAMPLE / "news.tsv"
  if not news.exists():
    pytest.skip("shared MIND sample not present")
  seen = {line.split("\t")[1] for line in news.read_text(encoding="utf-8").splitlines() if line}
  assert seen <= set(tpl.tags_for("mind"))


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_surface_forms(domain: str) -> None:
  assert set(tpl.SURFACE_FORMS[domain]) == set(tpl.tags_for(domain))
  for tag, forms in tpl.SURFACE_FORMS[domain].items():
    assert forms and len(set(forms)) == len(forms), tag
    assert all(f == f.strip() and f and "{" not in f for f in forms), tag
  assert tpl.SURFACE_FORMS["ml-1m"]["Sci-Fi"] == ("sci-fi", "science fiction", "sci fi")
  assert "noir" in tpl.SURFACE_FORMS["ml-1m"]["Film-Noir"]
  assert "television" in tpl.SURFACE_FORMS["mind"]["tv"]


# ------------------------------------------------------------------------------------------ counts


@pytest.mark.parametrize("domain", tpl.DOMAINS)
@pytest.mark.parametrize("family", EXPLICIT)
def test_explicit_template_counts(domain: str, family: str) -> None:
  train, held = tpl.TEMPLATES[domain][family]["train"], tpl.TEMPLATES[domain][family]["eval"]
  assert len(train) >= 10 and len(held) >= 4 and len(train) + len(held) >= 14
  assert len(set(train + held)) == len(train) + len(held)


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_nuanced_counts_per_tag(domain: str) -> None:
  for tag in tpl.tags_for(domain):
    n = {s: sum(tag in tags for _, tags in tpl.NUANCED[domain][s]) for s in tpl.SPLITS}
    assert n["train"] >= 3 and n["eval"] >= 1 and n["train"] + n["eval"] >= 5, (tag, n)
    got = tpl.prompts_for(domain, [tag], "nuanced", "eval")
    assert len(got) == n["eval"] and all(tag in p.tags for p in got)


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_prompt_counts(domain: str) -> None:
  tags = tpl.tags_for(domain)
  for family in EXPLICIT:
    n_train = len(tpl.TEMPLATES[domain][family]["train"])
    n_eval = len(tpl.TEMPLATES[domain][family]["eval"])
    n_forms = sum(len(tpl.SURFACE_FORMS[domain][t]) for t in tags)
    assert len(tpl.prompts_for(domain, tags, family, "train")) == n_train * n_forms
    assert len(tpl.prompts_for(domain, tags, family, "eval")) == n_eval * len(tags)
  for split in tpl.SPLITS:
    assert len(tpl.prompts_for(domain, tags, "nuanced", split)) == len(tpl.NUANCED[domain][split])


# ------------------------------------------------------------------------------------------ splits


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_train_and_eval_are_disjoint(domain: str) -> None:
  for family in EXPLICIT:
    split = tpl.TEMPLATES[domain][family]
    assert not set(split["train"]) & set(split["eval"])
    assert not _explicit_texts(domain, family, "train") & _explicit_texts(domain, family, "eval")
  nuanced = {s: [text for text, _ in tpl.NUANCED[domain][s]] for s in tpl.SPLITS}
  everything = nuanced["train"] + nuanced["eval"]
  assert len(set(everything)) == len(everything)
  explicit = set().union(*(_explicit_texts(domain, f, s) for f in EXPLICIT for s in tpl.SPLITS))
  assert not explicit & set(everything)
  # A training prompt never reads the same as an evaluation prompt, whatever its family.
  train = {_norm(p.text) for p in tpl.all_prompts(domain) if p.split == "train"}
  held = {_norm(p.text) for p in tpl.all_prompts(domain) if p.split == "eval"}
  assert not train & held


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_eval_uses_canonical_form_train_uses_all(domain: str) -> None:
  tags = tpl.tags_for(domain)
  template = tpl.TEMPLATES[domain]["positive"]["eval"][0]
  got = tpl.prompts_for(domain, tags, "positive", "eval")[:len(tags)]
  assert [p.text for p in got] == [
      tpl.render(template, tpl.SURFACE_FORMS[domain][t][0]) for t in tags]
  template = tpl.TEMPLATES[domain]["negative"]["train"][0]
  tag = tags[-1]
  got = tpl.prompts_for(domain, [tag], "negative", "train")
  forms = tpl.SURFACE_FORMS[domain][tag]
  assert [p.text for p in got[:len(forms)]] == [tpl.render(template, f) for f in forms]


# ----------------------------------------------------------------------------------------- wording


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_nuanced_never_names_its_tags(domain: str) -> None:
  for split in tpl.SPLITS:
    for text, tags in tpl.NUANCED[domain][split]:
      assert tags and set(tags) <= set(tpl.tags_for(domain)), text
      assert len(set(tags)) == len(tags), text
      for tag in tags:
        for name in _names(domain, tag):
          assert not _mentions(text, name), (text, tag, name)


def test_mention_check_catches_names() -> None:
  assert _mentions("cartoons the kids can watch", _norm("kids'"))
  assert _mentions("a few good Comedies", _norm("comedy"))
  assert _mentions("classic Sci Fi", _norm("Sci-Fi"))
  assert _mentions("no Children's stuff", _norm("Children's"))
  assert not _mentions("a dramatic night", _norm("drama"))
  assert not _mentions("what's new", _norm("news"))


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_negative_templates_have_a_negation_cue(domain: str) -> None:
  for split in tpl.SPLITS:
    for t in tpl.TEMPLATES[domain]["negative"][split]:
      assert NEGATION.search(t), t
    for t in tpl.TEMPLATES[domain]["positive"][split]:
      assert not NEGATION.search(t), t


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_templates_mention_no_second_tag(domain: str) -> None:
  for family in EXPLICIT:
    for split in tpl.SPLITS:
      for t in tpl.TEMPLATES[domain][family][split]:
        rest = t.replace(tpl.SLOT, " ")
        for noun in HEAD_NOUNS[domain]:
          rest = re.sub(rf"\b{noun}\b", " ", rest)
        for tag in tpl.tags_for(domain):
          for name in _names(domain, tag):
            assert not _mentions(rest, name), (t, tag, name)


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_every_rendering_is_clean(domain: str) -> None:
  for p in tpl.all_prompts(domain):
    assert "{" not in p.text and "}" not in p.text, p.text
    assert p.text == p.text.strip() and "  " not in p.text, p.text
    assert not re.search(r"\ba [aeio]", p.text, re.IGNORECASE), p.text
    assert not re.search(r"\b(\w+) \1\b", p.text, re.IGNORECASE), p.text


def test_render() -> None:
  assert tpl.render("more {tag} movies, please", "sci-fi") == "more sci-fi movies, please"
  assert tpl.render("a {tag} film", "animated") == "an animated film"
  assert tpl.render("A {tag} film", "action") == "An action film"
  assert tpl.render("an {tag} film", "war") == "a war film"
  assert tpl.render("a {tag} story", "US and Canada") == "a US and Canada story"
  assert tpl.render("I'm in the mood for a {tag} film tonight", "film noir") == (
      "I'm in the mood for a film noir tonight")
  assert tpl.render("more {tag} news, please", "news") == "more news, please"
  assert tpl.render("more {tag} news, please", "sports") == "more sports news, please"
  assert tpl.render("{tag} films tonight, please", "kids'") == "Kids' films tonight, please"
  assert tpl.render("Sure. {tag} stories first", "travel") == "Sure. Travel stories first"
  assert tpl.render("no {tag} stories", "TV") == "no TV stories"
  for bad in ("no tag slot", "{tag} and {tag}", "{tag} {genre}", "{tag} }"):
    with pytest.raises(ValueError):
      tpl.render(bad, "comedy")
  with pytest.raises(ValueError):
    tpl.render("more {tag}", " ")


# --------------------------------------------------------------------------------------------- API


def test_prompt_fields() -> None:
  assert [f.name for f in dataclasses.fields(tpl.Prompt)] == [
      "text", "tags", "polarity", "family", "split"]
  p = tpl.Prompt("x", ("Comedy",), 1, "positive", "train")
  with pytest.raises(dataclasses.FrozenInstanceError):
    p.text = "y"  # type: ignore[misc]


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_polarity_family_split(domain: str) -> None:
  want = {"positive": 1, "negative": -1, "nuanced": 1}
  tags = tpl.tags_for(domain)
  for family in tpl.FAMILIES:
    for split in tpl.SPLITS:
      got = tpl.prompts_for(domain, tags, family, split)
      assert got
      for p in got:
        assert (p.family, p.split, p.polarity) == (family, split, want[family])
        assert isinstance(p.tags, tuple) and set(p.tags) <= set(tags)
        if family != "nuanced":
          assert len(p.tags) == 1


def test_nuanced_selection_by_tag() -> None:
  got = tpl.prompts_for("ml-1m", ["Children's"], "nuanced", "train")
  assert all(p.tags == ("Children's",) for p in got)
  assert "cartoons the little ones can watch" in {p.text for p in got}
  both = tpl.prompts_for("ml-1m", ["Children's", "Animation"], "nuanced", "train")
  assert len({p.text for p in both}) == len(both)  # a multi-tag prompt comes once
  assert any(p.tags == ("Animation", "Children's") for p in both)
  assert tpl.prompts_for("ml-1m", [], "nuanced", "train") == []
  # Prompt.tags keeps only the tags asked for; NUANCED keeps everything a prompt carries.
  only = tpl.prompts_for("ml-1m", ["Animation"], "nuanced", "train")
  assert all(p.tags == ("Animation",) for p in only)
  assert ("cartoons the little ones can watch", ("Animation", "Children's")) in (
      tpl.NUANCED["ml-1m"]["train"])
  assert "cartoons the little ones can watch" in {p.text for p in only}
  # Repeated tags are asked for once.
  assert tpl.prompts_for("mind", ["tv", "tv"], "positive", "eval") == tpl.prompts_for(
      "mind", ["tv"], "positive", "eval")


@pytest.mark.parametrize("domain", tpl.DOMAINS)
def test_all_prompts_and_determinism(domain: str) -> None:
  tags = tpl.tags_for(domain)
  a = tpl.all_prompts(domain, tags)
  assert a == tpl.all_prompts(domain, tags) == tpl.all_prompts(domain)
  assert a == [p for f in tpl.FAMILIES for s in tpl.SPLITS
               for p in tpl.prompts_for(domain, tags, f, s)]
  assert {(p.family, p.split) for p in a} == {(f, s) for f in tpl.FAMILIES for s in tpl.SPLITS}
  assert re.fullmatch(r"[0-9a-f]{64}", tpl.fingerprint(domain))
  assert tpl.fingerprint(domain) == tpl.fingerprint(domain)
  assert tpl.fingerprint("ml-1m") != tpl.fingerprint("mind")


def test_unknown_names_raise() -> None:
  with pytest.raises(ValueError, match="Scifi"):
    tpl.prompts_for("ml-1m", ["Comedy", "Scifi"], "positive", "train")
  with pytest.raises(ValueError, match="Comedy"):
    tpl.prompts_for("mind", ["Comedy"], "nuanced", "eval")
  with pytest.raises(ValueError, match="imdb"):
    tpl.tags_for("imdb")
  with pytest.raises(ValueError, match="neutral"):
    tpl.prompts_for("ml-1m", ["Comedy"], "neutral", "train")
  with pytest.raises(ValueError, match="test"):
    tpl.prompts_for("ml-1m", ["Comedy"], "positive", "test")
  with pytest.raises(ValueError, match="Horrors"):
    tpl.all_prompts("ml-1m", ["Horrors"])
  with pytest.raises(TypeError):
    tpl.prompts_for("ml-1m", "Comedy", "positive", "train")
