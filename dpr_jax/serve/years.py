"""An era named in a request: "80s action movies", "westerns from the 50s or 60s", "sci fi made
before 1970", "dramas since 1997".

The parsers read genres; a decade or a year in a request was dropped without a word. Here it is
read by rule, before the parsers, and taken out of the text they read; the Recommender keeps the
list to items released in those years (a title's trailing "(1985)"; items without a year are
left out of such a list) and says so. What is read:

* a decade: "80s", "'80s", "80's", "1980s", "eighties" (the twentieth century for two digits and
  words; "00s" / "2000s" for 2000-2009), optionally after "from / in / during (the)", "of the";
  "in my twenties" is an age, not an era;
* two decades joined by "or", "and", "to", "through", "-": from the first's start to the last's end;
* a bound: "before / pre- / earlier than / older than / until YEAR" (up to YEAR - 1; "until"
  includes YEAR), "after / post- / later than / newer than YEAR" (from YEAR + 1), "since YEAR"
  (from YEAR); "between YEAR and YEAR", "YEAR-YEAR", "YEAR to YEAR";
* a year alone (1900-2029), optionally after "from / in / of (the year)": that year.

A number that names no era -- an age ("my 6 year old", "i'm 30"), "top 10", "2 hours", "40th" --
is not a four-digit year or a decade and is left to the parsers. A title that carries a year
("2001: a space odyssey") is found first (dpr_jax.serve.titles), and only the rest of the request
is read here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from dpr_jax.serve.titles import TITLE_YEAR

_WORDS = {"twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
          "seventies": 1970, "eighties": 1980, "nineties": 1990}
# A decade: '80s / 80's / 1980s / eighties (groups: two digits, four digits, word).
_DECADE = (r"(?:'?(?P<{n}2>\d0)'?s|(?P<{n}4>(?:19|20)\d0)'?s|(?P<{n}w>"
           + "|".join(_WORDS) + r"))")
_YEAR = r"(?P<{n}>(?:19|20)\d\d)"
_LEAD = (r"(?:(?:made|released|filmed|shot)\s+)?"
         r"(?:(?:from|in|during)\s+(?:the\s+)?|of\s+the\s+|the\s+)?")
_BEFORE = r"(?:before|pre-?|earlier than|older than)\s*"
_AFTER = r"(?:after|post-?|later than|newer than)\s*"

_FORMS = [  # (kind, pattern), tried in this order; the first that matches is the era
    ("range", rf"\bbetween\s+{_YEAR.format(n='a')}\s+and\s+{_YEAR.format(n='b')}\b"),
    ("range", rf"{_LEAD}\b{_YEAR.format(n='a')}\s*(?:-|to|through)\s*{_YEAR.format(n='b')}\b"),
    ("decades", rf"{_LEAD}(?<![\w'-]){_DECADE.format(n='a')}"
                rf"\s*(?:or|and|to|through|-|/)\s*(?:the\s+)?{_DECADE.format(n='b')}(?![\w'-])"),
    ("decade", rf"{_LEAD}(?<![\w'-]){_DECADE.format(n='a')}(?![\w'-])"),
    ("before", rf"(?:(?:made|released|filmed|shot)\s+)?\b{_BEFORE}{_YEAR.format(n='a')}\b"),
    ("until", rf"(?:(?:made|released|filmed|shot)\s+)?\buntil\s+{_YEAR.format(n='a')}\b"),
    ("after", rf"(?:(?:made|released|filmed|shot)\s+)?\b{_AFTER}{_YEAR.format(n='a')}\b"),
    ("since", rf"(?:(?:made|released|filmed|shot)\s+)?\bsince\s+{_YEAR.format(n='a')}\b"),
    ("year", rf"{_LEAD}(?:the year\s+)?(?<![\w'-]){_YEAR.format(n='a')}(?![\w'-])"),
]
_PATTERNS = [(kind, re.compile(p, re.IGNORECASE)) for kind, p in _FORMS]
# Avoiding an era in words the negation cue (dpr_jax.prompts.features) leaves out, as its
# "over" is too ambiguous for a whole request: "i'm so over the 80s".
AVOID_OVER = re.compile(
    r"\b(?:i'?m|i am|we'?re|we are)\s+(?:so\s+|totally\s+|completely\s+)?over\b", re.IGNORECASE)
_AGE = re.compile(r"\b(?:my|our|their|his|her|your)\s+$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Era:
  """Release years a request named: ``first`` to ``last`` inclusive (``None``: open), the words
  read as the era (``typed``, at ``span`` of the text) and the request without them (``rest``)."""

  first: int | None
  last: int | None
  typed: str
  rest: str
  span: tuple[int, int]


def _decade(m: re.Match, n: str) -> int:
  two, four, word = m.group(f"{n}2"), m.group(f"{n}4"), m.group(f"{n}w")
  if word:
    return _WORDS[word.lower()]
  if four:
    return int(four)
  return (2000 if two == "00" else 1900) + int(two)


def find_era(text: str) -> Era | None:
  """The era named in ``text`` (module docstring), or None."""
  for kind, pattern in _PATTERNS:
    for m in pattern.finditer(text):
      if kind in ("decades", "decade") and m.group("aw") and _AGE.search(text[:m.start("aw")]):
        continue  # "in my twenties": an age
      if kind == "range":
        first, last = sorted((int(m.group("a")), int(m.group("b"))))
      elif kind in ("decades", "decade"):
        starts = [_decade(m, "a")] + ([_decade(m, "b")] if kind == "decades" else [])
        first, last = min(starts), max(starts) + 9
      else:
        year = int(m.group("a"))
        first, last = {"before": (None, year - 1), "until": (None, year),
                       "after": (year + 1, None), "since": (year, None),
                       "year": (year, year)}[kind]
      rest = " ".join((text[:m.start()] + " " + text[m.end():]).split())
      rest = re.sub(r"^[\s,;:-]+|[\s,;:-]+$", "", re.sub(r"\s+([,;:.!?])", r"\1", rest))
      return Era(first, last, m.group().strip(), rest, m.span())
  return None


def item_years(titles: Sequence[str]) -> np.ndarray:
  """int32[n]: each title's release year from its trailing "(1985)", 0 where it has none."""
  return np.array([int(m.group(1)) if (m := TITLE_YEAR.search(t or "")) else 0 for t in titles],
                  np.int32)
