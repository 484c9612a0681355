"""What a catalogue does not record: how an item is rated, reviewed or awarded, and its age
rating ("a highly rated comedy", "an oscar winner", "r-rated action").

Neither catalogue knows these (ML-1M: genres, titles, years; MIND: categories, titles), yet the
parsers read them as something they know: "top rated movies", "something rated r" and "r-rated"
were read as *want Children's* -- "rated" lies near the generator's Children's form "g-rated
stuff" (``reports/experiments.md``, 2026-12-07 session 27). Such a phrase is taken out before
the parsers read the request, and the answer says it was not used, so a person sees why the
list does not follow it:

- a rating or review with a word of quality: "highly / top / best / well / critically rated,
  reviewed, acclaimed or regarded", "acclaimed", "good / great / rave ... reviews" (with a "with"
  or "has the" before it), "five stars", "4.5 stars", "rated 3 stars" (a number below four
  without "rated" is left: "two stars fall in love");
- an award: "award-winning", "oscar winner(s)", "emmy-nominated", "won an oscar";
- an age rating other than G: "r-rated", "rated pg-13", "pg-13", "nc-17". G-rated is one of the
  generator's Children's forms ("g-rated stuff"), so the parsers read it.

A word of the class that says something else is left as typed: "underrated", "pirate",
"separated", "decorated", "a film critic", "oscar predictions", "restaurant reviews" (in news,
reviews and awards are topics: only reviews qualified as good are taken out). Serving only: the
steering tasks read their requests with the parsers alone.
"""

from __future__ import annotations

import re

_ARTICLE = r"(?:\b(?:an?|the)\s+)?"
_NUMBER = r"(?:[1-5](?:\.5)?\+?|one|two|three|four|five)"  # after "rated"
_HIGH = r"(?:4(?:\.5)?\+?|5|four|five)"  # alone: "five stars", not "two stars fall in love"
_RATED = re.compile(
    _ARTICLE + r"\b(?:(?:very\s+)?highly|high(?:ly)?|top|best|better|highest|well|critically|"
    r"greatly|most\s+highly)[\s-]*(?:rated|reviewed|regarded|acclaimed)\b"
    r"|" + _ARTICLE + r"\b(?:critically\s+)?acclaimed\b"
    r"|\b(?:(?:with|has|have|had|got|gets|getting)\s+)?(?:the\s+|some\s+)?(?:really\s+)?"
    r"(?:good|great|best|rave|excellent|glowing|strong|positive|top|stellar)\s+reviews\b"
    r"|" + _ARTICLE + r"\b(?:rated\s+" + _NUMBER + r"|" + _HIGH + r")[\s-]*stars?\b",
    re.IGNORECASE)
_AWARD = re.compile(
    _ARTICLE + r"\b(?:award|oscar|academy[\s-]+award|emmy|golden[\s-]+globe|bafta)s?[\s-]*"
    r"(?:winning|winners?|nominated|nominees?)\b"
    r"|\b(?:that\s+|which\s+)?won\s+(?:an?\s+|some\s+|many\s+|lots\s+of\s+)?(?:oscars?|awards?|"
    r"emmys?|academy\s+awards?)\b",
    re.IGNORECASE)
_AGE = re.compile(
    _ARTICLE + r"(?:\brated\s+(?:pg-?13|pg|r|nc-?17|x)(?![\w-])"
    r"|\b(?:pg-?13|pg|r|nc-?17|x)[\s-]+rated\b|\bpg-?13(?![\w-])|\bnc-?17(?![\w-]))",
    re.IGNORECASE)

_REVIEWS = "this catalogue records no ratings, reviews or awards"
_NOTES = ((_RATED, _REVIEWS), (_AWARD, _REVIEWS), (_AGE, "this catalogue records no age ratings"))


def unrecorded(text: str) -> tuple[str, tuple[str, ...]]:
  """``text`` without the phrases of what the catalogue does not record (module docstring),
  and a note per kind of phrase taken out ("'top rated' was not used: this catalogue records no
  ratings, reviews or awards"); ``(text, ())`` unchanged where it has none."""
  found: dict[str, list[str]] = {}
  for pattern, why in _NOTES:
    def cut(m, why=why):
      phrase = re.sub(r"^(?:an?|the)\s+", "", " ".join(m.group().split()), flags=re.IGNORECASE)
      found.setdefault(why, []).append(phrase)
      return " "
    text = pattern.sub(cut, text)
  if not found:
    return text, ()
  # The seams a phrase leaves: doubled spaces, a comma or a dash at either end.
  text = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(text.split()))
  text = re.sub(r"^[\s,;:\-]+|[\s,;:\-]+$", "", text)
  notes = tuple(
      f"{' and '.join(repr(p) for p in phrases)} {'was' if len(phrases) == 1 else 'were'} not"
      f" used: {why}" for why, phrases in found.items())
  return text, notes
