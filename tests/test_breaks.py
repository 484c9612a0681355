"""An avoid said as a break, said as "no X" before the parsers read a request
(dpr_jax.serve.breaks)."""

import pytest

from dpr_jax.serve.breaks import as_avoid


@pytest.mark.parametrize("typed, read", [
    ("i could use a break from westerns", "no westerns"),
    ("i'd like a change from all these thrillers", "no thrillers"),
    ("give the musicals a rest", "no musicals"),
    ("give war movies a break for a while", "no war movies for a while"),
    ("something different from horror", "anything but horror"),
    ("a break from dramas, maybe a comedy", "no dramas, maybe a comedy"),
    ("a fantasy for a change from all the war stuff", "a fantasy but no war stuff"),
])
def test_a_break_from_a_genre_is_said_as_an_avoid(typed, read):
  assert as_avoid(typed) == read


@pytest.mark.parametrize("typed", [
    "a prison break movie", "a comedy for a change", "something different tonight",
    "give me a romance", "give it a rest", "a movie about a lucky break", "no horror",
])
def test_other_breaks_stay_as_typed(typed):
  assert as_avoid(typed) == typed
