"""Idioms that only intensify a wish: "scare the hell out of me", "laugh my head off".

The parsers read the "out" / "off" of such idioms as an avoid ("scare the hell out of me" was
read *avoid Horror*, and training requests said as effects did not change that:
``reports/experiments.md``, 2026-12-07 session 25). The idiom adds only strength, so it is taken
out before the parsers read the request and they decide on what is left:

- "the hell / crap / life / living daylights / pants / ... out of me" and "... off me" -> "me"
  ("scare the hell out of me" -> "scare me", "thrill the pants off me" -> "thrill me");
- "my head / butt / socks / eyes / heart / ... off" or "... out" goes ("laugh my head off" ->
  "laugh", "cry my eyes out" -> "cry");
- "to death" / "to tears" / "to pieces" after a word goes ("scare me to death" -> "scare me").

An "out" or "off" that is not such an idiom ("keep the gore out of it", "horror is off the
table", "count me out of musicals") is left as typed. Serving only: the steering tasks read their
requests with the parsers alone.
"""

from __future__ import annotations

import re

_WHAT = (r"(?:the\s+)?(?:living\s+daylights|daylights|hell|heck|crap|shit|sh\*t|life|bejesus|"
         r"bejeezus|jesus|wits|pants|socks|stuffing|snot|tar|willies)")
_PART = r"(?:head|heads|butt|ass|arse|socks|pants|face|eyes|heart|guts|brains?|tail)"
_RULES = (
    (re.compile(rf"\b{_WHAT}\s+(?:out\s+of|off)\s+(me|us)\b", re.IGNORECASE), r"\1"),
    (re.compile(rf"\s*\b(?:my|our)\s+{_PART}\s+(?:off|out)\b", re.IGNORECASE), ""),
    (re.compile(r"(?<=\w)\s+to\s+(?:death|tears|pieces)\b", re.IGNORECASE), ""),
)


def plain(text: str) -> str:
  """``text`` without its intensifying idioms (module docstring); unchanged if it has none."""
  for pattern, replacement in _RULES:
    text = pattern.sub(replacement, text)
  return text
