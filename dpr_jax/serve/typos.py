"""A mistyped genre word: "horor", "no romace please", "westrens but not musicals".

The parsers learnt small typos from the generator (one swap, drop or double in a word of five
letters or more, never in a tag form's first three letters), and a genre typed alone is read by
exact forms (dpr_jax.serve.one_genre). So before a request is read, a word that is no word the
person could have meant as typed is read as the genre word it is a letter or two from:

- the word has four letters or more and is neither a whole word of the encoder's vocabulary
  (nor one with an ending, :data:`INFLECTIONS`: "dames", "robberies", "frighten") nor a word
  of an item's title ("thrilled", "auction", "musician", "Gump" stay as typed);
- it is within one edit of a word that names exactly one genre (the words of the tag names and
  of the generator's surface forms that belong to one tag: "horror", "westerns", "scary",
  "tearjerkers"; "movies" names many, so it is no target), two edits for words of eight letters
  or more; a swap of neighbouring letters is one edit;
- the nearest such words are one, or all name the same genre (of those, the one nearest in
  length); a word that is a form's word but for a plural "s" is read as it without a note.

The answer says what was read ("read 'horor' as 'horror'"), so a wrong guess is shown. Serving
only: the steering tasks read their requests with the parsers alone.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from dpr_jax.serve.one_genre import genre_words

MIN_LETTERS = 4  # Shorter words are left as typed (too many real words one letter apart).
LONG_WORD = 8  # Words this long may be two edits from the word meant.
_LETTERS = re.compile(r"[A-Za-z]+")
# Endings that make a known word of a vocabulary word (the encoder's vocabulary holds few
# inflected forms): the ending and what replaces it ("robberies": "robbery").
INFLECTIONS = (("s", ""), ("es", ""), ("ed", ""), ("d", ""), ("ing", ""), ("er", ""),
               ("ers", ""), ("ly", ""), ("en", ""), ("ies", "y"), ("ied", "y"))


def genre_targets(domain: str, tag_names: Sequence[str]) -> dict[str, str]:
  """The words (of :data:`MIN_LETTERS` or more) that name exactly one genre, to that genre: the
  words of each tag's name and of its surface forms (dpr_jax.serve.one_genre.genre_words)."""
  owners: dict[str, set[str]] = {}
  for form, tags in genre_words(domain, tag_names).items():
    for word in form.split():
      if len(word) >= MIN_LETTERS and word.isalpha():
        owners.setdefault(word, set()).update(tags)
  return {w: next(iter(tags)) for w, tags in owners.items() if len(tags) == 1}


def edit_distance(a: str, b: str, limit: int) -> int:
  """Optimal-string-alignment distance of ``a`` and ``b`` (insert, delete, substitute, swap of
  neighbours: one edit each), or ``limit + 1`` once it is known to exceed ``limit``."""
  if abs(len(a) - len(b)) > limit:
    return limit + 1
  prev2: list[int] = []
  prev = list(range(len(b) + 1))
  for i in range(1, len(a) + 1):
    row = [i] + [0] * len(b)
    for j in range(1, len(b) + 1):
      row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
      if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
        row[j] = min(row[j], prev2[j - 2] + 1)
    if min(row) > limit:
      return limit + 1
    prev2, prev = prev, row
  return min(prev[-1], limit + 1)


def _deletions(word: str, k: int) -> set[str]:
  """``word`` and every string made from it by deleting up to ``k`` letters."""
  out, frontier = {word}, {word}
  for _ in range(k):
    frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
    out |= frontier
  return out


@dataclasses.dataclass(frozen=True)
class Speller:
  """Reads mistyped genre words (module docstring). ``targets``: :func:`genre_targets`;
  ``known``: the words left as typed (lower case: the encoder's whole words, the titles')."""

  targets: dict[str, str]
  known: frozenset[str]
  # Each target's strings with up to two letters deleted, to the targets (symmetric deletion:
  # a word within k edits of a target shares such a string with it, each side losing <= k), so
  # a word is compared with a few candidates, not every target -- 5,000 characters of unknown
  # words are read in milliseconds.
  _candidates: dict[str, frozenset[str]] = dataclasses.field(init=False, repr=False,
                                                              compare=False)

  def __post_init__(self):
    index: dict[str, set[str]] = {}
    for target in self.targets:
      for variant in _deletions(target, 2):
        index.setdefault(variant, set()).add(target)
    object.__setattr__(self, "_candidates", {v: frozenset(t) for v, t in index.items()})

  @classmethod
  def build(cls, domain: str, tag_names: Sequence[str], vocabulary: Iterable[str],
            titles: Iterable[str] = ()) -> Speller:
    """``vocabulary``: the encoder's tokens (word pieces "##..." are not words); ``titles``:
    the catalogue's item titles."""
    known = {t.lower() for t in vocabulary if t.isalpha()}
    for title in titles:
      known.update(w.lower() for w in _LETTERS.findall(title))
    return cls(genre_targets(domain, tag_names), frozenset(known))

  def meant(self, word: str) -> str | None:
    """The genre word ``word`` (as typed) is read as, or None (left as typed)."""
    w = word.lower()
    if len(w) < MIN_LETTERS or w in self.known or w in self.targets or self._inflected(w):
      return None
    limit = 2 if len(w) >= LONG_WORD else 1
    candidates = set().union(*(self._candidates.get(v, ()) for v in _deletions(w, limit)))
    best, nearest = limit + 1, []
    for target in sorted(candidates):
      d = edit_distance(w, target, best)
      if d < best:
        best, nearest = d, [target]
      elif d == best and d <= limit:
        nearest.append(target)
    if best > limit or len({self.targets[t] for t in nearest}) != 1:
      return None
    return min(nearest, key=lambda t: (abs(len(t) - len(w)), t))

  def _inflected(self, w: str) -> bool:
    """Whether ``w`` is a known word of three letters or more with one of :data:`INFLECTIONS`."""
    return any(w.endswith(end) and len(w) - len(end) + len(new) >= 3
               and w[:len(w) - len(end)] + new in self.known for end, new in INFLECTIONS)

  def correct(self, text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(``text`` with each mistyped genre word replaced, the (typed, read as) pairs); a word
    that is the one meant but for a plural "s" ("tearjerker": "tearjerkers") is replaced
    without a pair -- it is no typo."""
    fixes = []

    def swap(m: re.Match) -> str:
      meant = self.meant(m.group())
      if meant is None:
        return m.group()
      if meant not in (m.group().lower() + "s", m.group().lower()[:-1]):
        fixes.append((m.group(), meant))
      return meant

    out = _LETTERS.sub(swap, text)
    return out, tuple(fixes)
