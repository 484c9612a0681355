"""What the catalogue does not record -- ratings, reviews, awards, age ratings -- taken out
before the parsers read a request, with a note (dpr_jax.serve.ratings)."""

import json
import pathlib

import pytest

from dpr_jax.serve.ratings import unrecorded

REVIEWS = "this catalogue records no ratings, reviews or awards"
AGE = "this catalogue records no age ratings"


@pytest.mark.parametrize("typed, rest, notes", [
    ("a highly rated comedy", "comedy", (f"'highly rated' was not used: {REVIEWS}",)),
    ("Top-Rated horror, no gore", "horror, no gore", (f"'Top-Rated' was not used: {REVIEWS}",)),
    ("critically acclaimed", "", (f"'critically acclaimed' was not used: {REVIEWS}",)),
    ("westerns with great reviews", "westerns", (f"'with great reviews' was not used: {REVIEWS}",)),
    ("an oscar winner", "", (f"'oscar winner' was not used: {REVIEWS}",)),
    ("a drama that won an oscar", "a drama", (f"'that won an oscar' was not used: {REVIEWS}",)),
    ("movies rated 3 stars", "movies", (f"'rated 3 stars' was not used: {REVIEWS}",)),
    ("4.5 stars only", "only", (f"'4.5 stars' was not used: {REVIEWS}",)),
    ("r-rated action", "action", (f"'r-rated' was not used: {AGE}",)),
    ("something rated PG-13, no romance", "something, no romance",
     (f"'rated PG-13' was not used: {AGE}",)),
    ("an award-winning, r rated thriller", "thriller",
     (f"'award-winning' was not used: {REVIEWS}", f"'r rated' was not used: {AGE}")),
    ("highly rated and well reviewed dramas", "and dramas",
     (f"'highly rated' and 'well reviewed' were not used: {REVIEWS}",)),
])
def test_phrases_the_catalogue_cannot_use_are_taken_out_and_named(typed, rest, notes):
  assert unrecorded(typed) == (rest, notes)


@pytest.mark.parametrize("typed", [
    "g-rated stuff for the kids", "a G-rated movie for a Sunday afternoon", "rather not see horror",
    "a pirate adventure", "a decorated war hero", "separated lovers", "underrated westerns",
    "two stars fall in love", "a story about a film critic", "oscar predictions",
    "restaurant reviews", "new car reviews", "award show highlights", "the best comedies",
    "star wars", "a starry night", "the pg version", "no horror please",
])
def test_other_words_of_the_kind_stay_as_typed(typed):
  assert unrecorded(typed) == (typed, ())


def test_no_request_of_the_projects_other_sets_is_changed_but_one_vague():
  """Every set the parsers are measured on stays as typed (rule (c) of the change, session 27):
  only the everyday set's vague "whatever's highly rated" has such a phrase."""
  from dpr_jax.prompts import everyday, templates

  changed = []
  for domain in ("ml-1m", "mind"):
    texts = [r.text for r in everyday.load(domain)] + [
        p.text for p in templates.all_prompts(domain)]
    changed += [t for t in texts if unrecorded(t)[0] != t]
  root = pathlib.Path(__file__).resolve().parents[1] / "dpr_jax" / "prompts"
  for path in root.glob("*/*.jsonl"):
    if path.parent.name not in ("ratings", "everyday"):  # everyday: read above
      changed += [r["text"] for r in map(json.loads, path.open()) if unrecorded(r["text"])[0]
                  != r["text"]]
  assert changed == ["whatever's highly rated"]


def test_unrecorded_is_idempotent():
  for text in ("a top rated, r-rated comedy", "no horror"):
    once, _ = unrecorded(text)
    assert unrecorded(once) == (once, ())
