"""An avoid, then a wish: "no westerns, a comedy would be great", "drama is not my thing,
comedy is".

The parsers let a leading negation reach the clauses after it: "no horror, comedy would be
nice" was read as avoiding Comedy too (``reports/experiments.md``, 2026-12-07 session 27), while
the same wishes said first are read right (the generator's first training construction is "{X}
but no {Y}"). So before the parsers read such a request it is said wish first, and the parsers
decide on that:

- the request is cut into clauses at , ; . ! ? : followed by a space, and before "but",
  "though", and "and" followed by a verb or a person ("and show me ...", "and i ..."; not
  before "so": "so much");
- where the first clause holds the negation lexicon's cue (dpr_jax.prompts.features) and a later
  clause holds none and is not only filler ("please", "thanks", "tonight"), the request is said
  as its cue-free clauses (in order, without a leading "but" / "and" / "so" / "though" and end
  punctuation), "but", then its clauses with a cue: "no westerns, a comedy would be great" ->
  "a comedy would be great but no westerns".

The Recommender reads a request said so only where the parsers, reading it as typed, want
nothing, and keeps that second reading where it wants something (``Recommender._read_text``).

A request whose first clause has no cue ("comedies, yes; romances, no", "westerns? no thanks"),
that only avoids ("no horror, no gore"), or whose later clauses are filler ("no romance,
please") is left as typed. Serving only: the steering tasks read their requests with the
parsers alone.
"""

from __future__ import annotations

import re

from dpr_jax.prompts.features import negation_cue

_CUT = re.compile(
    r"(?<=[,;.!?:])\s+|\s+(?=(?:but|though)\b)|\s+(?=and\s+(?:show|give|find|get|let's|let|"
    r"maybe|how|what|i|we|make|play|watch|bring|just)\b)", re.IGNORECASE)
_LEAD = re.compile(r"^(?:but|though|so|and)\s+", re.IGNORECASE)
_FILLER = frozenset(
    "please pls plz thanks thank you thx tonight today ok okay lol haha hmm maybe then at all "
    "for now again anymore either too i guess".split())


def _bare(clause: str) -> str:
  """A clause without its leading conjunction and end punctuation."""
  return _LEAD.sub("", clause.strip()).rstrip(",;.!?: ")


def wish_first(text: str) -> str:
  """``text`` said wish first where it avoids first (module docstring); unchanged otherwise."""
  clauses = [c for c in _CUT.split(text) if c.strip()]
  if len(clauses) < 2 or not negation_cue(clauses[0]):
    return text
  wishes = [c for c in clauses if not negation_cue(c)]
  if not any(set(re.findall(r"[a-z']+", _bare(c).lower())) - _FILLER for c in wishes):
    return text
  avoids = [c for c in clauses if negation_cue(c)]
  return (", ".join(_bare(c) for c in wishes) + " but "
          + ", ".join(_bare(c) for c in avoids))
