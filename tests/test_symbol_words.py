"""Symbols that say "no" are spelled out before a request is read (dpr_jax.prompts.symbol_words)."""

import json
import pathlib

import pytest

from dpr_jax.prompts import everyday
from dpr_jax.prompts.symbol_words import NO, YES, spell_out

SET = pathlib.Path(__file__).parents[1] / "dpr_jax" / "prompts" / "symbols" / "requests.jsonl"


@pytest.mark.parametrize("text, spelled", [
    ("🚫 horror", "no horror"),  # before the words: says no to what follows
    ("horror 👎", "no horror"),  # after the words, ending the text: reacts to them
    ("horror! 👎", "no horror"),
    ("horror 🚫, romance please", "no horror, romance please"),
    ("romance ✅ horror ❌", "romance, no horror"),  # a yes symbol beside a no is a clause break
    ("✅ horror 🚫 romance", "horror, no romance"),
    ("romance ok but ❌ horror", "romance ok but no horror"),
    ("🙅\u200d♀️ horror films", "no horror films"),  # joiner and gender sign ride on the symbol
    ("✖\ufe0f romance", "no romance"),  # variation selector
    ("❌❌ romance", "no, no romance"),
])
def test_a_no_symbol_becomes_the_word_no_where_it_binds(text, spelled):
  assert spell_out(text) == spelled


@pytest.mark.parametrize("text", ["no horror", "romantic movie for date night ❤️", "comedy 👍",
                                  "✅ action", "whatever 🤷", "", "   ", "🎬🍿🎉"])
def test_a_request_without_a_no_symbol_is_left_byte_for_byte(text):
  assert spell_out(text) == text


def test_the_everyday_sets_are_read_as_before():
  """None of the everyday requests (decorating emoji included) holds a "no" symbol, so the
  spelling-out leaves every one as typed and their figures stand."""
  for domain in ("ml-1m", "mind"):
    for r in everyday.load(domain):
      assert spell_out(r.text) == r.text


def test_the_symbol_sets_requests_say_no_in_words():
  """The evaluation set (written before the code): each request with a "no" symbol is spelled
  with the word "no" and keeps every genre word; the others are left as they are."""
  rows = [json.loads(line) for line in SET.read_text().splitlines()]
  assert len(rows) == 24
  for r in rows:
    spelled = spell_out(r["text"])
    if any(c in NO for c in r["text"]):
      assert "no " in spelled and not any(c in NO + YES for c in spelled)
      words = [w.strip(",") for w in r["text"].split() if w.strip(",").isalpha()]
      assert all(w in spelled for w in words)
    else:
      assert spelled == r["text"]


def test_a_bare_no_symbol_names_nothing():
  assert spell_out("🚫") == "no"  # read as nothing named: the unprompted list and its note


def test_the_rules_reader_reads_the_symbol_as_the_word():
  import numpy as np

  from dpr_jax.prompts.reader import rules_reader

  embed = lambda texts: np.ones((len(texts), 3), np.float32)  # noqa: E731
  read = rules_reader(embed)
  got, words = read(["🚫 horror", "comedy ✅ drama ❌"]), read(["no horror", "comedy, no drama"])
  for a, b in ((got.positive, words.positive), (got.negative, words.negative),
               (got.part_negative, words.part_negative)):
    np.testing.assert_array_equal(a, b)
  assert got.negative[0] >= 0 and got.positive[0] < 0  # a negative part only
