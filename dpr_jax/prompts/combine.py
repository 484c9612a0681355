"""Combined requests: one sentence that asks for something and excludes something else.

"a comedy, but no romance", "sci-fi or fantasy, nothing scary": the paper lists such requests
as a limitation because one prompt embedding has to carry two opposite wishes. We split the
request into its positive and its negative part and steer with both at once (see
:func:`dpr_jax.serve.recommender.steer_parts` and the COMBINED evaluation task).

Design (ours): a small, documented rule set rather than a learned parser.

1. **Clauses.** The text is cut at punctuation that separates clauses (``, ; : . ! ?`` and a
   dash between spaces) and in front of words that open a contrasting or excluding clause:
   "but" (not in "anything but" / "all but", which are themselves negations), "without",
   "except", "minus", "though" / "although", and "and"/"or" directly followed by a negation
   ("and no romance"; "or" without a negation is *not* cut, so alternatives stay together:
   "sci-fi or fantasy").
2. **Filler.** Clauses made only of filler and negation words ("please", "thanks",
   "tonight", "or nothing", ...) are dropped; a leading "but"/"and"/"so"/"though" is stripped
   from a clause.
3. **Polarity.** A clause is negative when it carries a negation / aversion cue
   (:data:`dpr_jax.prompts.features.NEGATION_CUES`, the lexicon the DPR head reads, plus
   "fewer", "no more", "hide", "remove", "filter out" and "stop suggesting"), else positive.
   A bare verdict clause ("yes", "no", "please no") gives its polarity to the clause before
   it: "comedy, yes; romance, no" -> positive "comedy", negative "no romance". A positive
   clause that names nothing ("show me something else") is dropped: it carries no wish of its
   own. A contrast inside a description ("real footage about real people, not actors") is
   read as an exclusion too.
4. **Parts.** Positive clauses are joined (in order, with ", ") into one positive text, negative
   clauses into one negative text. When only one polarity is left, the request is a single
   wish and its part is the *whole, unchanged text*: a single-wish request is steered exactly as
   without the splitter (the tests check this on every single-wish template).
"""

from __future__ import annotations

import dataclasses
import functools
import re

from dpr_jax.prompts.features import negation_cue

_FILLER = frozenset("""
please pls thanks thank you tonight today now ok okay and but or so just maybe i me guess
though then also too really well yes yeah hey hi oh honestly seriously frankly actually hmm
""".split())
_VERDICT = {"yes": 1, "yep": 1, "sure": 1, "absolutely": 1, "no": -1, "nope": -1, "never": -1}
_NEGATION_WORDS = frozenset("no not nothing never none nor without".split())
# Words of a positive clause that names nothing ("show me something else").
_GENERIC = _FILLER | frozenset("""
show give get find recommend suggest want would like i'd i'm in the mood for some something
anything else different instead other another stuff things one ones watch see read story
stories article articles to a an of
""".split())
_EXTRA_CUES = re.compile(
    r"\b(?:fewer|no more|hide|remove|filter out|stop (?:suggesting|showing|recommending))\b",
    re.IGNORECASE)
_NEGATIONS = r"(?:no|not|nothing|never|none|without|nor)\b"
# Cut positions: punctuation, or just before a clause-opening word.
_CUT = re.compile(
    r"\s*(?:[,;:.!?]+|\s[-\u2013\u2014]+\s)\s*"  # punctuation (and a dash between spaces)
    r"|\s+(?=(?<!anything )(?<!all )but\b)"  # "but", except "anything but" / "all but"
    r"|\s+(?=(?:without|except|minus|though|although)\b)"
    r"|\s+(?=(?:and|or)\s+" + _NEGATIONS + r")",
    re.IGNORECASE)
_LEADING = re.compile(r"^(?:(?:but|and|so|though|although|also)\b\s*)+", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Request:
  """A request split by polarity; an empty string means "no such part"."""

  positive: str
  negative: str

  @property
  def parts(self) -> list[tuple[str, int]]:
    """``[(text, polarity)]`` of the non-empty parts, positive first (+1 / -1)."""
    return [(t, s) for t, s in ((self.positive, 1), (self.negative, -1)) if t]

  @property
  def is_combined(self) -> bool:
    return bool(self.positive and self.negative)


def clauses(text: str) -> list[tuple[str, int]]:
  """The request's clauses with their polarity (+1 / -1), in order (rules 1-3 above)."""
  out: list[tuple[str, int]] = []
  for piece in _CUT.split(" ".join(text.split())):
    piece = _LEADING.sub("", piece.strip()).strip()
    words = re.findall(r"[a-z']+", piece.lower())
    content = [w for w in words if w not in _FILLER and w not in _VERDICT]
    verdicts = [_VERDICT[w] for w in words if w in _VERDICT]
    if not content and verdicts and out:  # "..., no": a verdict on the clause before
      prev = out[-1][0]
      out[-1] = (f"no {prev}" if verdicts[-1] < 0 and not negation_cue(prev) else prev,
                 verdicts[-1])
    elif content and not all(w in _NEGATION_WORDS for w in content):
      negative = negation_cue(piece) or _EXTRA_CUES.search(piece)
      if negative or not all(w in _GENERIC for w in content):
        out.append((piece, -1 if negative else 1))
  return out


def split_request(text: str) -> Request:
  """Splits ``text`` into its positive and negative part (see the module docstring).

  A text with no clause left after dropping filler (e.g. "please") is returned whole as the
  positive part, so the caller still sees the user's words.
  """
  found = clauses(text)
  pos = [c for c, sign in found if sign > 0]
  neg = [c for c, sign in found if sign < 0]
  if pos and neg:
    return Request(", ".join(pos), ", ".join(neg))
  whole = " ".join(text.split())
  return Request("", whole) if neg or (not pos and negation_cue(whole)) else Request(whole, "")


@functools.lru_cache(maxsize=65536)
def is_negative(text: str) -> bool:
  """Whether ``text`` is a single negative wish ("no horror tonight"), by the rules above."""
  r = split_request(text)
  return bool(r.negative) and not r.positive
