"""Intensifying idioms taken out before the parsers read a request (dpr_jax.serve.idioms)."""

import pytest

from dpr_jax.serve.idioms import plain


@pytest.mark.parametrize("typed, read", [
    ("scare the hell out of me", "scare me"),
    ("Scare The Living Daylights Out Of Us!", "Scare Us!"),
    ("thrill the pants off me please", "thrill me please"),
    ("i want to laugh my head off", "i want to laugh"),
    ("something to cry my eyes out to, no war", "something to cry to, no war"),
    ("bore me to death and i leave", "bore me and i leave"),
    ("don't scare the crap out of me", "don't scare me"),
])
def test_intensifying_idioms_are_taken_out(typed, read):
  assert plain(typed) == read


@pytest.mark.parametrize("typed", [
    "keep the gore out of it", "count me out of musicals", "horror is off the table",
    "leave the westerns out", "i'm off sci-fi for a while", "turn off the drama",
    "get me out of this slump", "no horror please", "the hell of war", "death and tears",
    "take my mind off work", "out of my league",
])
def test_other_outs_and_offs_stay_as_typed(typed):
  assert plain(typed) == typed


def test_plain_is_idempotent():
  for text in ("scare the hell out of me, then laugh my head off", "no horror"):
    assert plain(plain(text)) == plain(text)
