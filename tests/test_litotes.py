"""A wish said by denying an aversion, said as "i want" before the parsers read a request
(dpr_jax.serve.litotes)."""

import pytest

from dpr_jax.serve.litotes import as_wish


@pytest.mark.parametrize("typed, read", [
    ("i'm not against a western", "i want a western"),
    ("Not opposed to some romance", "i want some romance"),
    ("i don't mind horror tonight", "i want horror tonight"),
    ("i wouldn't say no to a comedy", "i want a comedy"),
    ("i have nothing against musicals", "i want musicals"),
    ("no problem with cartoons, no war", "i want cartoons, no war"),
    ("no horror, though i don't dislike thrillers", "no horror, though i want thrillers"),
])
def test_a_denied_aversion_is_said_as_a_wish(typed, read):
  assert as_wish(typed) == read


@pytest.mark.parametrize("typed", [
    "i hate musicals", "i'm against anything gory", "not a fan of westerns",
    "i really don't like romance", "i don't mind, surprise me", "i don't mind",
    "no problem, anything but horror", "i don't want horror", "nothing scary",
])
def test_other_negations_stay_as_typed(typed):
  assert as_wish(typed) == typed
