"""dpr_jax.prompts.language: a request in another language is told from an English one."""

import json

import pytest

from dpr_jax.prompts import everyday, generator, language, templates

DOMAINS = ("ml-1m", "mind")


def _set():
  import importlib.resources
  path = importlib.resources.files("dpr_jax.prompts") / "languages" / "requests.jsonl"
  return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("domain", DOMAINS)
def test_no_english_request_of_the_project_is_flagged(domain):
  """The everyday set, the generator's requests of both splits (typos and lower case included)
  and every template stay English: the check must never turn a request into the unprompted
  list because of how it is written."""
  texts = [r.text for r in everyday.load(domain)]
  texts += [r.text for r in generator.generate(domain, "train", 3000, seed=5)]
  texts += [r.text for r in generator.generate(domain, "heldout", 1000, seed=5)]
  texts += [p.text for p in templates.all_prompts(domain)]
  flagged = [(t, language.other_language(t)) for t in texts if language.other_language(t)]
  assert not flagged, flagged[:5]


@pytest.mark.parametrize("text", [
    "a film noir please", "no gore por favor", "de niro gangster movies", "something like Amélie",
    "las vegas", "sin city", "che guevara", "non stop action", "NO MORE HORROR!!!",
    "something with a femme fatale, no rom coms", "los angeles crime stories"])
def test_english_with_foreign_words_stays_english(text):
  assert language.other_language(text) is None


@pytest.mark.parametrize("text, expected", [
    ("ничего страшного, просто комедия", "a Cyrillic-script language"),
    ("أريد فيلما كوميديا", "Arabic"),
    ("κωμωδία παρακαλώ", "Greek"),
    ("코미디 영화 보고 싶어", "Korean"),
    ("喜剧片，不要恐怖的", "Chinese or Japanese"),
    ("ich möchte heute keinen Krimi", "German"),
    ("quiero algo divertido, nada de guerra", "Spanish"),
    ("je voudrais une comédie ce soir", "French"),
    ("voglio qualcosa di divertente stasera", "Italian"),
    ("eu quero filmes de ação hoje", "Portuguese"),
    ("ik wil vanavond geen oorlog", "Dutch"),
])
def test_other_languages_are_named(text, expected):
  assert language.other_language(text) == expected


@pytest.mark.parametrize("text", ["🎬🍿🎉", "123", "!!!", "", "   "])
def test_nothing_to_tell_from(text):
  assert language.other_language(text) is None


def test_the_other_languages_set():
  """The set written before the check (never edited after): well formed, its English controls
  never flagged, and at least two thirds of its other-language requests flagged (the rule the
  check was landed by, reports/experiments.md, 2026-12-07 session 23)."""
  rows = _set()
  assert len({r["id"] for r in rows}) == len(rows)
  assert all(set(r) == {"id", "language", "domain", "text"} and r["domain"] in DOMAINS
             for r in rows)
  english = [r for r in rows if r["language"] == "en"]
  other = [r for r in rows if r["language"] != "en"]
  assert len(english) == 30 and len(other) == 79
  assert not [r["text"] for r in english if language.other_language(r["text"])]
  assert sum(bool(language.other_language(r["text"])) for r in other) >= 2 * len(other) / 3
