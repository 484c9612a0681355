"""An avoid said as a break: "i need a break from dramas", "give westerns a rest", "something
different from horror".

The parsers read these as wishes -- "something different from horror" and "give westerns a
rest" were read as *want* (``reports/experiments.md``, 2026-12-07 session 27): the generator
says avoids with "no", "tired of", "enough", never as a break. So before the parsers read the
request it is said in the generator's training forms, and the parsers decide on that (a wish
said after it, "no horror, show me a mystery", is then read by the Recommender's avoid-first
re-reading, dpr_jax.serve.avoid_first):

- "(i could use / need / 'd like / let's take / time for) a break / rest / breather / pause /
  change (of pace) / time off from (all) (the / these / those) X" -> "no X", or "but no X" where
  a word of the clause stays before it ("a fantasy for a change from the war stuff" -> "a
  fantasy but no war stuff");
- "give (the) X a rest / break" -> "no X";
- "something / anything ... different from / than / to X" -> "anything but X".

X runs to the end of its clause: , ; . ! ? "but" "though", or "and" before a verb ("a break from
musicals and watch a thriller"). Other senses are left as typed: "a prison break movie", "a
comedy for a change", "something different tonight", "give me a romance". Serving only: the
steering tasks read their requests with the parsers alone.
"""

from __future__ import annotations

import re

# The end of X: clause punctuation, "but" / "though", or "and" before a verb (a new clause).
_END = (r"(?=\s*[,;.!?]|\s+(?:but|though)\b|\s+and\s+(?:watch|show|give|get|find|play|see|"
        r"make|let's|maybe|how|then|i|we)\b|$)")
_X = r"(?:all\s+)?(?:the\s+|these\s+|those\s+)?([^,;.!?]+?)" + _END
_NEED = (r"(?:(?:i|we)(?:\s+|(?=')))?(?:could\s+use|need|want|would\s+like|'d\s+like|like)?\s*"
         r"(?:(?:let's|to)\s+)?(?:take\s+)?(?:time\s+for\s+)?")
_BREAK = re.compile(
    r"(^|[,;.!?]\s*)?(\s*)" + _NEED + r"(?:for\s+)?(?:a|some)?\s*(?:little\s+)?"
    r"(?:break|rest|breather|pause|change(?:\s+of\s+pace)?|time\s+(?:off|away))\s+from\s+" + _X,
    re.IGNORECASE)
_REST = re.compile(r"\bgive\s+(?:the\s+)?(?!(?:me|us|it|them|this|that)\b)([^,;.!?]+?)\s+a\s+(?:rest|break)\b",
                   re.IGNORECASE)
_DIFFERENT = re.compile(r"\b(?:some|any)(?:thing|one)\s+(?:a\s+bit\s+|totally\s+|completely\s+)?"
                        r"different\s+(?:from|than|to)\s+" + _X, re.IGNORECASE)


def as_avoid(text: str) -> str:
  """``text`` with an avoid said as a break said as "no X" (module docstring); unchanged if it
  has none."""
  def no(m: re.Match) -> str:
    start = m.start()
    clause = re.split(r"[,;.!?]", text[:start])[-1]  # the clause's words before the phrase
    lead = "but no" if any(c.isalpha() for c in clause) else "no"
    return f"{m.group(1) or ''}{m.group(2) if lead == 'no' else ' '}{lead} {m.group(3)}"

  text = _BREAK.sub(no, text)
  text = _REST.sub(lambda m: f"no {m.group(1)}", text)
  return _DIFFERENT.sub(lambda m: f"anything but {m.group(1)}", text)
