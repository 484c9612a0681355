"""Words saying the kids are away or asleep, taken out before the parsers read a request
(dpr_jax.serve.kids_away)."""

import pytest

from dpr_jax.serve.kids_away import without


@pytest.mark.parametrize("typed, read", [
    ("the kids are asleep, something scary", "something scary"),
    ("after the kids go to bed, horror", "horror"),
    ("kids are finally asleep so a thriller", "a thriller"),
    ("with the kids away at camp, an action movie", "an action movie"),
    ("children are at their dad's this weekend, no musicals", "no musicals"),
    ("date night without the kids, a comedy", "date night, a comedy"),
    ("now the kids are in bed, a horror movie but no romance", "a horror movie but no romance"),
])
def test_the_kids_away_or_asleep_are_taken_out(typed, read):
  assert without(typed) == read


@pytest.mark.parametrize("typed", [
    "something for the kids", "the kids want cartoons", "a movie about kids at summer camp",
    "a story about children who are asleep for a hundred years", "kids movies please",
    "kid-free please", "i want something kid-free", "no horror",
])
def test_the_kids_as_audience_or_subject_stay_as_typed(typed):
  assert without(typed) == typed
