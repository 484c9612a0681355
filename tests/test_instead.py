"""One genre asked in place of another, said as "X but no Y" before the parsers read a request
(dpr_jax.serve.instead)."""

import pytest

from dpr_jax.serve.instead import in_place


@pytest.mark.parametrize("typed, read", [
    ("westerns instead of musicals", "westerns but no musicals"),
    ("i want a comedy instead of a drama", "i want a comedy but no drama"),
    ("instead of horror, a comedy please", "a comedy please but no horror"),
    ("Comedy rather than drama, no war", "Comedy but no drama, no war"),
    ("crime in place of romance", "crime but no romance"),
    ("i'd take sci-fi over fantasy", "i'd take sci-fi but no fantasy"),
    ("i prefer westerns over musicals any day", "i prefer westerns but no musicals any day"),
    ("swap the romance for action", "action but no romance"),
    ("swap out the dramas for comedies", "comedies but no dramas"),
    ("replace the horror with a thriller", "a thriller but no horror"),
    ("something other than horror", "anything but horror"),
    ("any genre besides musicals", "anything but musicals"),
    ("movies apart from westerns", "anything but westerns"),
])
def test_one_genre_in_place_of_another_is_said_as_x_but_no_y(typed, read):
  assert in_place(typed) == read


@pytest.mark.parametrize("typed", [
    "i'm so over westerns", "over the top action", "i'd rather not see horror",
    "a rather scary movie", "horror, or rather a thriller", "comedy, something else instead",
    "besides comedies i also like westerns", "a war movie that takes place over a weekend",
    "a man who replaces his wife with a robot", "instead of horror", "no horror please",
    "anything but horror", "no the", "stocks over the past week",
])
def test_other_senses_stay_as_typed(typed):
  assert in_place(typed) == typed



def test_the_generators_held_out_instead_of_requests_are_rewritten():
  """The generator's held-out split holds "{X} instead of {Y}" (its training split none of the
  class: tests/test_reading_rules.py); each is said as "X but no Y"."""
  from dpr_jax.prompts import generator

  for domain in ("ml-1m", "mind"):
    heldout = [r for r in generator.generate(domain, "heldout", 1000, 0)
               if " instead of " in r.text]
    assert heldout and all(" but no " in in_place(r.text) for r in heldout)
