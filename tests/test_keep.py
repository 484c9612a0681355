"""Wishes said with "keep" read as the plain wish before the parsers read a request
(dpr_jax.serve.keep)."""

import pytest

from dpr_jax.serve.keep import as_wish


@pytest.mark.parametrize("typed, read", [
    ("keep the westerns coming", "want the westerns coming"),
    ("Keep it funny please", "want it funny please"),
    ("keep giving me thrillers", "give me thrillers"),
    ("don't keep recommending horror", "don't recommend horror"),
    ("no romance, keep the action", "no romance, want the action"),
    ("drop the musicals and keep the westerns", "drop the musicals and want the westerns"),
    ("keep the sci-fi coming, but keep the gore out", "want the sci-fi coming, but keep the gore out"),
])
def test_a_keep_that_does_not_avoid_is_read_as_the_wish(typed, read):
  assert as_wish(typed) == read


@pytest.mark.parametrize("typed", [
    "keep the gore out of it", "keep it horror-free", "keep westerns off the list",
    "keep the musicals away", "keep spaceships and aliens off the list", "keep the romance at bay",
    "keep horror to a minimum", "keep clear of war films", "keep away from cartoons",
    "keep me guessing", "keep me posted on tennis", "something that keeps me on the edge of my seat",
    "keep your romance movies", "the action movies you keep showing me", "a keeper",
    "Keeping the Faith", "please keep food and drink stories out of my feed",
])
def test_avoids_and_other_keeps_stay_as_typed(typed):
  assert as_wish(typed) == typed
