"""The kids away or asleep: "the kids are in bed, time for a thriller", "date night without the
kids, a romantic comedy".

Words about who is *not* watching name the kids, and the parsers read them as a wish for kids'
movies: "the kids are asleep, something scary" was read *want Children's 1.00* beside Horror
(``reports/experiments.md``, 2026-12-07 session 27). They say nothing of what to watch, so they
are taken out, to the end of their clause, before the parsers read the request:

- "(after / once / now (that) / when / while / since) (the / my / our) kids / children / little
  ones / boys / girls / kiddos" followed by a verb ("are", "went", "go", "fall", "have gone",
  ...) and "asleep", "in bed", "to bed", "to sleep", "away", "out", "gone", "at school", "at
  camp", "at a sleepover", "at X's" -- or directly by "asleep" / "in bed", or after "with"
  ("with the kids away at camp");
- "without the kids", "no kids around / tonight / home".

A leading "so" / "and" / punctuation left at the seam goes. "kid-free" is left to the parsers:
the generator teaches it as an avoid of Children's ("{Y}-free"). The kids as audience or
subject are left as typed: "something for the kids", "the kids want cartoons", "a movie about kids at summer
camp", "children who are asleep for a hundred years". Serving only: the steering tasks read
their requests with the parsers alone.
"""

from __future__ import annotations

import re

_KIDS = r"(?:(?:the|my|our)\s+)?(?:kids|kiddos|children|little\s+ones|boys|girls)"
_VERB = (r"(?:are|'re|r|were|went|go|goes|fall|fell|falls|have\s+gone|have\s+gone\s+to|got|get)"
         r"(?:\s+(?:finally|all|both|already|now))?")
_AWAY = (r"(?:asleep|in\s+bed|to\s+bed|to\s+sleep|away|out|gone|at\s+school|at\s+camp|"
         r"at\s+a\s+sleepover|at\s+(?:their\s+)?[\w-]+'s)")
_REST = r"[^,;.!?]*?(?=\s+so\b|[,;.!?]|$)"  # the rest of the clause
_LEAD = r"(?:(?:after|once|now(?:\s+that)?|when|while|since)\s+)?"
_AWAY_CLAUSE = re.compile(
    rf"\b{_LEAD}{_KIDS}(?:'re)?\s+(?:{_VERB}\s+{_AWAY}|(?:finally\s+)?(?:asleep|in\s+bed))\b{_REST}"
    rf"|\bwith\s+{_KIDS}\s+{_AWAY}\b{_REST}"
    rf"|\bwithout\s+{_KIDS}\b|\bno\s+kids\s+(?:around|tonight|home|here)\b",
    re.IGNORECASE)
_SEAM = re.compile(r"^[\s,;.!?:]*(?:(?:so|and|then)\b[\s,]*)?", re.IGNORECASE)


def without(text: str) -> str:
  """``text`` without the words saying the kids are away or asleep (module docstring);
  unchanged if it has none."""
  cut = _AWAY_CLAUSE.sub("", text)
  if cut == text:
    return text
  cut = re.sub(r"\s+([,;.!?])", r"\1", " ".join(cut.split()))
  cut = re.sub(r"([,;.!?])(?:\s*[,;.!?])+", r"\1", cut)  # "., " left where a clause went
  return _SEAM.sub("", cut).strip()
