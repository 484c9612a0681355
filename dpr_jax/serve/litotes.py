"""A wish said by denying an aversion: "i'm not against a western", "i don't mind horror",
"i wouldn't say no to a comedy".

The parsers read the negation and not what it denies: "i don't hate musicals", "not opposed to
romance" and "not against a comedy" were read as *avoid* 1.00 (``reports/experiments.md``,
2026-12-07 session 27). Before the parsers read the request, such a phrase is said as "i want",
and the parsers decide on that:

- "(i'm) not against / opposed to / averse to X", "(i) wouldn't say no to X", "(i have / i've
  got) nothing against X", "no objection(s) / problem(s) to / with X" -> "i want X";
- "(i) don't hate / dislike / mind X", where a word follows -> "i want X" ("i don't mind,
  surprise me" is left as typed).

"i hate musicals", "not a fan of westerns", "i'm against anything gory", "no problem, anything
but horror" are left as typed. Serving only: the steering tasks read their requests with the
parsers alone.
"""

from __future__ import annotations

import re

_I = r"(?:\b(?:i'm|i\s+am|im|i've\s+got|i\s+have|i've|i|we're|we)\s+)?"
_DENIED = re.compile(
    _I + r"(?:\bnot\s+(?:against|opposed\s+to|averse\s+to)"
    r"|\b(?:would\s+not|wouldn't|wouldnt)\s+say\s+no\s+to"
    r"|\b(?:got\s+)?nothing\s+against"
    r"|\bno\s+(?:objections?|problems?)\s+(?:to|with)"
    r"|\b(?:do\s+not|don't|dont)\s+(?:hate|dislike|mind)(?=\s+\w))\b",
    re.IGNORECASE)


def as_wish(text: str) -> str:
  """``text`` with a wish said by denying an aversion said as "i want" (module docstring);
  unchanged if it has none."""
  return _DENIED.sub("i want", text)
