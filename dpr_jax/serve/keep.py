"""Wishes said with "keep": "keep the westerns coming", "no romance, keep the action".

ML-1M's generator says "keep" only in avoids ("keep the {Y} away", "keep {Y} off the list",
"keep it {Y}-free"), so its parsers learnt "keep" as a word of avoiding: "keep the westerns
coming" and "skip romance but keep comedy" were read as avoiding what they keep
(``reports/experiments.md``, 2026-12-07 session 27). A "keep" that does not avoid is read as the
plain wish before the parsers read the request, and they decide on that:

- "keep giving / showing / recommending / watching ..." is that verb ("keep giving me thrillers"
  -> "give me thrillers", "don't keep recommending horror" -> "don't recommend horror");
- any other "keep" is "want" ("keep the westerns coming" -> "want the westerns coming").

Only the word "keep" is read ("something that keeps me guessing" describes an item). It stays as
typed where its clause (up to the next , ; . ! ? or "but" / "though"; "and" joins a form's
words) makes it an avoid -- "away", "out", "off", "-free", "clear", "at bay", "to a minimum",
"down", "under", "from": "keep the gore out of it", "keep spaceships and aliens off the list" --
where a person follows it ("keep me guessing", "keep me posted": what an item does to them),
in "keep your X" (an avoid: "keep your romance movies"), and after who keeps doing something
("the action movies you keep showing me": a complaint). It runs after a title named in the
request is found (dpr_jax.serve.titles). Serving only: the steering tasks read their requests
with the parsers alone.
"""

from __future__ import annotations

import bisect
import re

# The verbs "keep ...ing" continues, as their plain form.
_CONTINUED = {"giving": "give", "showing": "show", "sending": "send", "recommending": "recommend",
              "bringing": "bring", "suggesting": "suggest", "serving": "serve",
              "playing": "play", "watching": "watch"}
_KEEP = re.compile(r"\bkeep\b", re.IGNORECASE)
# The rest of a keep's clause ("and" joins a form's words: "keep spaceships and aliens off").
_CLAUSE_END = re.compile(r"[,;.!?]|\s(?:but|though)\b", re.IGNORECASE)
_AVOIDS = re.compile(r"\b(?:away|out|off|clear|at\s+bay|to\s+a\s+minimum|down|under|from)\b|"
                     r"-?\bfree\b", re.IGNORECASE)
# After "keep": a person ("keep me guessing", "keep me posted") or "your" ("keep your romance
# movies": an avoid); before it: who keeps doing something ("the movies you keep showing me").
_LEFT = re.compile(r"\s+(?:me|us|you|him|her|them|your|yours)\b", re.IGNORECASE)
_DOER = re.compile(r"\b(?:you|they|i|we|he|she|it|people)\s+$", re.IGNORECASE)


_VERB = re.compile(r"\s+(\w+)")


def as_wish(text: str) -> str:
  """``text`` with each "keep" that does not avoid read as the plain wish (module docstring);
  unchanged if it has none. Linear in the text's length (a 5,000-character request of "keep"s
  is bad input the Recommender must answer)."""
  ends = [m.start() for m in _CLAUSE_END.finditer(text)] + [len(text)]
  avoids = [m.start() for m in _AVOIDS.finditer(text)]
  out, last = [], 0
  for m in _KEEP.finditer(text):
    end = ends[bisect.bisect_left(ends, m.end())]  # where the keep's clause ends
    a = bisect.bisect_left(avoids, m.end())
    if ((a < len(avoids) and avoids[a] < end) or _LEFT.match(text, m.end())
        or _DOER.search(text[max(0, m.start() - 12):m.start()])):
      continue  # an avoid ("keep the gore out of it"), or not a wish (module docstring)
    out.append(text[last:m.start()])
    verb = _VERB.match(text, m.end())
    if verb and verb.group(1).lower() in _CONTINUED:  # "keep giving me X": "give me X"
      out.append(_CONTINUED[verb.group(1).lower()])
      last = verb.end()
    else:  # "keep the westerns coming": "want the westerns coming"
      out.append("want")
      last = m.end()
  return "".join(out) + text[last:]
