"""The lexical negation cue, per request and per clause (dpr_jax.prompts.features)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dpr_jax.prompts.features import clause_cues, clause_spans, negation_cue


@pytest.mark.parametrize("text, clauses", [
    ("any comedy picks? skip the romance ones", ["any comedy picks?", "skip the romance ones"]),
    ("comedy movies, yes; horror movies, no", ["comedy movies, yes;", "horror movies, no"]),
    ("a comedy, but no romance please", ["a comedy,", "but no romance please"]),
    ("looking for drama - no war please", ["looking for drama", "no war please"]),
    ("i'm sick of horror. comedy please", ["i'm sick of horror.", "comedy please"]),
    ("mood: westerns", ["mood:", "westerns"]),
    # "but" meaning "except" and commas do not end a clause
    ("anything but horror", ["anything but horror"]),
    ("nothing but comedy tonight", ["nothing but comedy tonight"]),
    ("something funny, nothing scary", ["something funny, nothing scary"]),
    ("butter-soft romance", ["butter-soft romance"]),
])
def test_clause_spans(text, clauses):
  spans = clause_spans(text)
  assert [text[a:b] for a, b in spans] == clauses
  assert all(a < b for a, b in spans) and spans == sorted(spans)


def _whitespace_tokens(text):
  """[CLS], one token per word (character offsets), [SEP], as the encoder's tokenizer marks
  them."""
  words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
  return [(0, 0)] + words + [(0, 0)], [1] + [0] * len(words) + [1]


def test_each_token_gets_its_own_clauses_cue_and_the_specials_the_requests():
  text = "any comedy picks? skip the romance ones"
  offsets, special = _whitespace_tokens(text)
  np.testing.assert_array_equal(clause_cues(text, offsets, special),
                                [1, 0, 0, 0, 1, 1, 1, 1, 1])
  # One clause: every token carries the request's cue, as before.
  text = "nothing but comedy tonight"
  offsets, special = _whitespace_tokens(text)
  np.testing.assert_array_equal(clause_cues(text, offsets, special),
                                [negation_cue(text)] * len(offsets))
  text = "comedy tonight"
  np.testing.assert_array_equal(clause_cues(text, *_whitespace_tokens(text)), [0, 0, 0, 0])
  # An expression the clause break cuts is no longer one ("leave ... out" across a "?").
  text = "leave it? out with romance"
  assert negation_cue(text) == 1.0
  np.testing.assert_array_equal(clause_cues(text, *_whitespace_tokens(text)),
                                [1, 0, 0, 0, 0, 0, 1])
