"""Wishes said with "keep": "keep the westerns coming", "no romance, keep the action".

ML-1M's generator says "keep" only in avoids ("keep the {Y} away", "keep {Y} off the list",
"keep it {Y}-free"), so its parsers learnt "keep" as a word of avoiding: "keep the westerns
coming" and "skip romance but keep comedy" were read as avoiding what they keep
(``reports/experiments.md``, 2026-12-07 session 27). A "keep" that does not avoid is read as the
plain wish before the parsers read the request, and they decide on that:

- "keep giving / showing / recommending / watching ..." is that verb ("keep giving me thrillers"
  -> "give me thrillers", "don't keep recommending horror" -> "don't recommend horror");
- any other "keep" is "want" ("keep the westerns coming" -> "want the westerns coming").

A "keep" stays as typed where its clause (up to the next , ; . ! ? or "but" / "and" / "though")
makes it an avoid -- "away", "out", "off", "-free", "clear", "at bay", "to a minimum", "down",
"under", "from": "keep the gore out of it", "keep the romance at bay" -- and in "keep your X"
(an avoid: "keep your romance movies") and "keep me posted / updated / informed" (a wish the
parsers know). Serving only: the steering tasks read their requests with the parsers alone.
"""

from __future__ import annotations

import re

# The verbs "keep ...ing" continues, as their plain form.
_CONTINUED = {"giving": "give", "showing": "show", "sending": "send", "recommending": "recommend",
              "bringing": "bring", "suggesting": "suggest", "serving": "serve",
              "playing": "play", "watching": "watch"}
_KEEP = re.compile(r"\bkeep(?:s|ing)?\b", re.IGNORECASE)
# The rest of a keep's clause.
_CLAUSE_END = re.compile(r"[,;.!?]|\s(?:but|and|though)\b", re.IGNORECASE)
_AVOIDS = re.compile(r"\b(?:away|out|off|clear|at\s+bay|to\s+a\s+minimum|down|under|from)\b|"
                     r"-?\bfree\b", re.IGNORECASE)
_LEFT = re.compile(r"\s+(?:your|yours|me\s+(?:posted|updated|informed|in\s+the\s+loop))\b",
                   re.IGNORECASE)


def as_wish(text: str) -> str:
  """``text`` with each "keep" that does not avoid read as the plain wish (module docstring);
  unchanged if it has none."""
  out, last = [], 0
  for m in _KEEP.finditer(text):
    after = text[m.end():]
    end = _CLAUSE_END.search(after)
    if _AVOIDS.search(after[:end.start()] if end else after) or _LEFT.match(after):
      continue  # an avoid ("keep the gore out of it"), or left to the parsers
    out.append(text[last:m.start()])
    verb = re.match(r"\s+(\w+)", after)
    if verb and verb.group(1).lower() in _CONTINUED:  # "keep giving me X": "give me X"
      out.append(_CONTINUED[verb.group(1).lower()])
      last = m.end() + verb.end()
    else:  # "keep the westerns coming": "want the westerns coming"
      out.append("want")
      last = m.end()
  return "".join(out) + text[last:]
