"""Catalogue titles as people name them: in a history ("Toy Story") and in a request ("something
like die hard").

:func:`title_names` gives the names a person may type for a title. :class:`TitleFinder` finds
a title named after "like" / "similar to" / "in the vein of" in a request, so that "something
like die hard" is read as the item Die Hard (1988) rather than by the request parser, which
knows the catalogue's genres, not its titles. What a match needs (each rule keeps ordinary
requests from reading as titles; none of the project's requests does):

* a cue (:data:`CUES`) not used as a verb: "like" right after "i", "we", "would", "feel"... is
  the verb ("i like horror", "i'd like a western"), see :data:`VERB_BEFORE`;
* the longest run of words right after the cue (an article may lead) that is a name of a
  title: case, punctuation and the year aside, with a trailing article in front ("the matrix"
  for "Matrix, The (1999)"), and as a second choice the part before a subtitle ("terminator 2"
  for "Terminator 2: Judgment Day (1991)");
* the run ends the request, or is followed by punctuation or by a word of :data:`AFTER_TITLE`
  ("... but no romance", "... for the kids"): "anything like big budget action" names no title
  although "Big (1988)" is one;
* the run is not a genre's name or one of its everyday forms (``genre_names``,
  dpr_jax.serve.one_genre.genre_words): "something along the lines of romance" asks for the
  genre, not for *Romance (1999)*.

Titles listed right after the first ("the godfather or goodfellas", "jaws, jurassic park and
big": joined by a comma, "or" or "and") are read too, by the same rules. A request that is a
title's name alone, of two words or more ("die hard", "pulp fiction please"), is read as that
title too; a one-word title ("Heat", "Big", "Whatever") alone is left to the parser, as the
ordinary word it also is.

Of several items with the name, the most watched is read (people who type "titanic" mean the
1997 one); a full name beats a name before a subtitle.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np

CUES = ("like", "similar to", "in the vein of", "along the lines of", "reminds me of",
        "the likes of")
# Words after which "like" is the verb: "i like", "we'd like", "would like", "feel like".
VERB_BEFORE = frozenset("i we you they he she it i'd we'd you'd they'd would do does did dont"
                        " don't doesn't didn't really also might may to feel feels felt kinda"
                        " just".split())
# Words that may follow a title in a request.
AFTER_TITLE = frozenset("but and or for with without no not nothing please pls plz tonight today"
                        " except only though yet plus minus again too as so that which maybe"
                        " this".split())
MAX_WORDS = 10  # the longest name looked for, in words
# Words that may follow a title that is the whole request ("pulp fiction please").
BARE_AFTER = frozenset("please pls plz".split())

TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")  # a catalogue title's year: "Heat (1995)"
_TRAILING_ARTICLE = re.compile(r"^(.*), (the|a|an|les|la|le|il|el|der|die|das)$", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# What joins a listed title to the one before it: a comma, "or", "and", or a comma and either.
_JOINER = re.compile(r"[!?]*(?:\s*,\s*(?:(?:or|and)\s+)?|\s+(?:or|and)\s+)", re.IGNORECASE)


def casefold_name(text: str) -> str:
  return " ".join(text.casefold().split())


def title_names(title: str) -> set[str]:
  """The names a person may type for a catalogue title: "Matrix, The (1999)" -> {"matrix, the",
  "the matrix", "the matrix (1999)"} (case-folded; the full title is matched apart)."""
  bare = TITLE_YEAR.sub("", title)
  year = TITLE_YEAR.search(title)
  names = {casefold_name(bare)}
  moved = _TRAILING_ARTICLE.match(bare.strip())
  if moved:
    front = f"{moved.group(2)} {moved.group(1)}"
    names.add(casefold_name(front))
    if year:
      names.add(casefold_name(f"{front} ({year.group(1)})"))
  return names


def words(text: str) -> str:
  """The words of ``text``, case-folded, punctuation dropped: "Airplane!" -> "airplane",
  "Sci-Fi" -> "sci fi"."""
  return " ".join(_WORD.findall(text.casefold()))


@dataclasses.dataclass(frozen=True)
class TitleMatch:
  """The titles named in a request: the items (1-based indices, in the order typed), the names
  as typed and the rest of the request with the cue and the names taken out."""

  items: tuple[int, ...]
  typed: tuple[str, ...]
  rest: str


class TitleFinder:
  """Finds a catalogue title named in a request (module docstring)."""

  def __init__(self, titles: Sequence[str], watched: np.ndarray,
               genre_names: Iterable[str] = ()):
    """``titles``: the catalogue's titles, item i at ``titles[i - 1]``; ``watched``: int[V]
    how often each item was watched (indexed by item; more watched wins a name shared by
    several items); ``genre_names``: names never read as a title (the domain's tags and their
    surface forms, dpr_jax.serve.one_genre.genre_words)."""
    full: dict[str, list[int]] = {}
    short: dict[str, list[int]] = {}
    for i, title in enumerate(titles, start=1):
      if not title:
        continue
      names = {words(n) for n in title_names(title) | {title}} - {""}
      for name in names:
        full.setdefault(name, []).append(i)
      bare = TITLE_YEAR.sub("", title)
      if ":" in bare:  # the part before a subtitle, as a second choice
        head = words(bare.split(":", 1)[0])
        if head and head not in names:
          short.setdefault(head, []).append(i)
    pick = lambda items: max(items, key=lambda i: (int(watched[i]), -i))  # noqa: E731
    self._names = {n: pick(items) for n, items in short.items()}
    self._names |= {n: pick(items) for n, items in full.items()}  # a full name wins
    for name in genre_names:  # the parser reads genres
      self._names.pop(words(name), None)
    cue = "|".join(c.replace(" ", r"\s+") for c in CUES)
    self._cue = re.compile(rf"(?<![^\W_])({cue})(?![^\W_])", re.IGNORECASE)

  def _title_at(self, text: str, pos: int) -> tuple[int, int, int] | None:
    """(item, start, end) of the longest title name starting at the first word from ``pos``
    and ending the text or followed by punctuation or a word of :data:`AFTER_TITLE`."""
    after = list(itertools.islice(_WORD.finditer(text, pos), MAX_WORDS))
    for n in range(len(after), 0, -1):
      name = " ".join(m.group(0).casefold() for m in after[:n])
      if name not in self._names:
        continue
      end = after[n - 1].end()
      following = text[end:].lstrip()
      if (not following.strip("!?.,;:() ")) or following[:1] in ",.;:!?)" or (
          n < len(after) and after[n].group(0).casefold() in AFTER_TITLE):
        return self._names[name], after[0].start(), end
    return None

  def find(self, text: str) -> TitleMatch | None:
    """The titles named after the first cue in ``text`` that names one -- the first and those
    listed right after it ("the godfather or goodfellas", "alien, aliens, the terminator") --
    or the whole request if it is a title's name; None when there is none."""
    for cue in self._cue.finditer(text):
      before = _WORD.findall(text[:cue.start()].casefold())
      if cue.group(1).casefold() == "like" and before and before[-1] in VERB_BEFORE:
        continue
      found = self._title_at(text, cue.end())
      if found is None:
        continue
      items, typed, end = [found[0]], [text[found[1]:found[2]]], found[2]
      while joined := _JOINER.match(text, end):  # "..., or TITLE", "... and TITLE"
        more = self._title_at(text, joined.end())
        if more is None or more[1] != _WORD.search(text, joined.end()).start():
          break
        items.append(more[0])
        typed.append(text[more[1]:more[2]])
        end = more[2]
      rest = " ".join((text[:cue.start()] + " " + text[end:].lstrip("!?)")).split())
      return TitleMatch(tuple(items), tuple(typed), rest)
    # A title alone ("die hard", "pulp fiction please"), of two words or more.
    words = list(_WORD.finditer(text))
    while words and words[-1].group(0).casefold() in BARE_AFTER:
      words.pop()
    name = " ".join(m.group(0).casefold() for m in words)
    if len(words) >= 2 and name in self._names:  # every word of the request is the name's
      return TitleMatch((self._names[name],), (text[words[0].start():words[-1].end()],), "")
    return None

