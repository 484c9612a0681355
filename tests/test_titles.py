"""A title named in a request ("something like die hard") is found as people type it
(dpr_jax.serve.titles)."""

import json
import pathlib

import numpy as np
import pytest

from dpr_jax.serve.one_genre import genre_words
from dpr_jax.serve.titles import TitleFinder

SET = pathlib.Path(__file__).parents[1] / "dpr_jax" / "prompts" / "titles" / "requests.jsonl"


def finder(titles, watched=None, genres=()):
  watched = np.ones(len(titles) + 1, np.int64) if watched is None else np.asarray(watched)
  return TitleFinder(titles, watched, genres)


def test_names_as_people_type_them():
  f = finder(["Matrix, The (1999)", "Airplane! (1980)", "Terminator 2: Judgment Day (1991)",
              "Die Hard (1988)", "Die Hard 2 (1990)", "GoodFellas (1990)"])
  for text, item in [("something like the matrix", 1), ("something like Matrix, The", 1),
                     ("films like airplane", 2), ("something like terminator 2", 3),
                     ("something like die hard", 4), ("something like die hard 2", 5),
                     ("movies like goodfellas", 6), ("similar to THE MATRIX (1999)", 1),
                     ("anything in the vein of die hard", 4)]:
    m = f.find(text)
    assert m is not None and m.items == (item,), text


def test_of_one_name_the_most_watched_and_a_full_name_before_a_subtitle():
  titles = ["Titanic (1953)", "Titanic (1997)", "Alien (1979)", "Alien: Resurrection (1997)",
            "Star Wars: Episode I (1999)", "Star Wars: Episode IV (1977)"]
  f = finder(titles, watched=[0, 5, 90, 10, 80, 40, 70])
  assert f.find("something like titanic").items[0] == 2
  assert f.find("something like alien").items[0] == 3  # the full name, though the other is named too
  assert f.find("something like star wars").items[0] == 6  # before a subtitle: the most watched


def test_like_as_a_verb_and_words_that_only_start_a_title_name_none():
  f = finder(["Big (1988)", "Horror Express (1972)", "Comedy (2000)", "That (1999)"])
  for text in ["i like big movies", "i'd like big explosions", "feel like big", "we really like big",
               "anything like big budget action", "something like horror express-ish stuff"]:
    assert f.find(text) is None, text
  for text in ["something like big", "something like big, please", "something like big but funnier",
               "something like big!"]:
    assert f.find(text).items[0] == 1, text


def test_a_genre_is_never_a_title():
  f = finder(["Romance (1999)", "Westerns (1990)", "Heat (1995)"], genres=["Romance", "westerns"])
  assert f.find("something along the lines of romance") is None
  assert f.find("something like westerns") is None
  assert f.find("something like heat").items[0] == 3


def test_the_rest_of_the_request_is_kept_for_the_parser():
  f = finder(["Braveheart (1995)", "Home Alone (1990)"])
  assert f.find("something like braveheart but no romance").rest == "something but no romance"
  assert f.find("stuff like home alone for the kids").rest == "stuff for the kids"
  m = f.find("Something like Home Alone!")
  assert (m.typed, m.rest) == (("Home Alone",), "Something")


def test_genre_words_hold_the_tags_and_their_forms():
  names = genre_words("ml-1m", ["Drama", "Sci-Fi"])
  assert {"drama", "sci fi"} <= set(names) and len(names) > 6  # and their everyday forms
  assert genre_words("elsewhere", ["Drama"]) == {"drama": {"Drama"}}
  # A tag is matched by its words, however it is written.
  f = finder(["Sci-Fi (1999)", "Film-Noir (1990)"], genres=["Sci-Fi", "Film-Noir"])
  assert f.find("something like sci fi") is None and f.find("something like film noir") is None


def test_the_title_sets_requests_against_their_titles_and_decoys():
  """The evaluation set (written before the code) on a catalogue of its titles and decoys (a
  sequel, an older film of one name, one-word titles that are common words, a genre-named
  title): every title found, no control read as a title."""
  rows = [json.loads(line) for line in SET.read_text().splitlines()]
  titles = sorted({r["title"] for r in rows if r["title"]}) + [
      "Die Hard 2 (1990)", "Titanic (1953)", "Big (1988)", "That Thing You Do! (1996)",
      "Romance (1999)", "Comedy (2000)", "Crying Game, The (1992)", "Terminator, The (1984)"]
  watched = np.ones(len(titles) + 1, np.int64)
  watched[titles.index("Titanic (1997)") + 1] = 9
  f = finder(titles, watched, genres=genre_words("ml-1m", ["Romance", "Comedy", "Western"]))
  for r in rows:
    m = f.find(r["text"])
    if r["title"] is None:
      assert m is None, r["text"]
    else:
      assert m is not None and titles[m.items[0] - 1] == r["title"], r["text"]


def test_a_title_alone_of_two_words_or_more():
  f = finder(["Die Hard (1988)", "Matrix, The (1999)", "Heat (1995)", "Whatever (1998)"])
  for text, item in [("die hard", 1), ("Die Hard!", 1), ("die hard please", 1), ("the matrix", 2),
                     ("THE MATRIX pls", 2)]:
    m = f.find(text)
    assert m is not None and (m.items, m.rest) == ((item,), ""), text
  for text in ["heat", "whatever", "die hard tonight", "die", "a die hard fan"]:
    assert f.find(text) is None, text


def test_the_bare_title_sets_requests():
  rows = [json.loads(line) for line in (SET.parent / "bare.jsonl").read_text().splitlines()]
  titles = sorted({r["title"] for r in rows if r["title"]}) + [
      "Big (1988)", "True Lies (1994)", "Date with an Angel (1987)", "Family Thing, A (1996)"]
  f = finder(titles)
  for r in rows:
    m = f.find(r["text"])
    assert (titles[m.items[0] - 1] if m else None) == r["title"], r["text"]


def test_titles_listed_after_the_first_are_read_in_order():
  f = finder(["Godfather, The (1972)", "GoodFellas (1990)", "Jaws (1975)", "Jurassic Park (1993)",
              "Big (1988)", "Die Hard (1988)"])
  for text, items, rest in [
      ("something like the godfather or goodfellas", (1, 2), "something"),
      ("stuff like jaws, or jurassic park please", (3, 4), "stuff please"),
      ("like jaws, jurassic park and big but no romance", (3, 4, 5), "but no romance"),
      ("something like die hard or a good comedy", (6,), "something or a good comedy"),
      ("something like die hard and lots of action", (6,), "something and lots of action")]:
    m = f.find(text)
    assert (m.items, m.rest) == (items, rest), text


def test_the_several_titles_sets_requests():
  """Every title of the set's requests read in order, where none is a genre's everyday word
  ("aliens" is one of Sci-Fi's: the parser reads it)."""
  rows = [json.loads(line) for line in (SET.parent / "several.jsonl").read_text().splitlines()]
  titles = sorted({t for r in rows for t in r["titles"]})
  f = finder(titles, genres=genre_words("ml-1m", ["Sci-Fi", "Comedy", "Romance"]))
  for r in rows:
    got = [titles[i - 1] for i in f.find(r["text"]).items]
    want = r["titles"]  # a list stops at a genre word (what follows is the parser's)
    if "Aliens (1986)" in want:
      want = want[:want.index("Aliens (1986)")]
    assert got == want, r["text"]
