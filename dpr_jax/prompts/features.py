"""What the DPR head reads of a prompt: its sentence embedding plus a lexical negation cue.

Why the cue: all-MiniLM-L6-v2 encodes negation weakly. A linear probe on the embeddings alone
separates positive from negative *training* templates (99.8%) but reaches only 80% on held-out
templates and calls a third of the (positive) nuanced prompts negative, so a router that sees
the embedding alone cannot keep "more X" and "no X" apart on phrasings it has not seen. The cue
is 1.0 when the text contains a generic English negation / aversion expression (the list below,
written as a general lexicon, with ambiguous words such as "stop", "over" or "drop" left out),
else 0.0; the router and the experts learn how much to trust it.

The request parser can also read the cue per clause (:func:`clause_cues`, config
``parser.clause_cue``): a clause ends at ". ? ! ; :" followed by a space, at a dash between
spaces, and before "but" (not in "anything but", "nothing but", "all but", "everything but",
where "but" means "except"); each token gets the cue of its own clause, so in "any comedy picks?
skip the romance ones" the tokens of "comedy" carry no negation and those of "romance" do.
Commas do not end a clause ("comedies, yes; romances, no": "no" is the second clause's).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

NEGATION_CUES = (
    r"\bno\b", r"\bnot\b", r"n't\b", r"\bnever\b", r"\bwithout\b", r"\bnothing\b", r"\bnone\b",
    r"\bavoid", r"\bskip", r"\bexcept\b", r"\banything but\b", r"\brather not\b", r"\bexclud",
    r"\bleave out\b", r"\bleave .{1,40} out\b", r"\bkeep .{1,40} out\b", r"\btired of\b",
    r"\bsick of\b", r"\benough\b", r"\bhate\b", r"\bdislike\b", r"\bdone with\b", r"\bspare me\b",
    r"\bfed up\b", r"\bpass on\b", r"\bsteer clear\b", r"\bbored of\b", r"\bless\b",
)
_PATTERN = re.compile("|".join(NEGATION_CUES), re.IGNORECASE)


def negation_cue(text: str) -> float:
  """1.0 if ``text`` contains a negation / aversion expression, else 0.0."""
  return 1.0 if _PATTERN.search(text) else 0.0


# Where a clause ends: after sentence punctuation, at a spaced dash, before "but".
_CLAUSE_BREAK = re.compile(r"(?<=[.?!;:])\s+|\s+[-\u2013\u2014]+\s+|\s+(?=but\b)", re.IGNORECASE)
# "but" meaning "except" after these words does not start a clause.
_BUT_EXCEPT = re.compile(r"\b(?:anything|nothing|all|everything)$", re.IGNORECASE)


def clause_spans(text: str) -> list[tuple[int, int]]:
  """The character ranges ``[start, end)`` of ``text``'s clauses (module docstring), in order,
  covering the text but for the white space and dashes between them.

  >>> [t[a:b] for t in ["any comedy picks? skip the romance ones"] for a, b in clause_spans(t)]
  ['any comedy picks?', 'skip the romance ones']
  """
  spans, start = [], 0
  for m in _CLAUSE_BREAK.finditer(text):
    if m.group().strip() == "" and text[m.end():m.end() + 3].lower() == "but" and (
        _BUT_EXCEPT.search(text[:m.start()])):
      continue  # "anything but horror": one clause
    if m.start() > start:
      spans.append((start, m.start()))
    start = m.end()
  if start < len(text) or not spans:
    spans.append((start, len(text)))
  return spans


def clause_cues(text: str, offsets: Sequence[tuple[int, int]],
                special: Sequence[int]) -> np.ndarray:
  """float32[len(offsets)]: per token, the negation cue of the clause it starts in.

  ``offsets``: each token's character range in ``text`` (the tokenizer's, ``text`` as it was
  tokenised); ``special``: 1 for [CLS] / [SEP] / padding, which get the whole text's cue (as a
  token outside every clause, it keeps the request-level reading)."""
  spans = clause_spans(text)
  cues = [negation_cue(text[a:b]) for a, b in spans]
  whole = negation_cue(text)
  out = np.full((len(offsets),), whole, np.float32)
  for j, ((a, _), sp) in enumerate(zip(offsets, special)):
    if not sp:
      k = next((i for i, (s, e) in enumerate(spans) if a < e), len(spans) - 1)
      out[j] = cues[k]
  return out


def prompt_features(embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
  """float32[n, D_t + 1]: ``[embedding, negation cue]`` per prompt."""
  cues = np.array([negation_cue(t) for t in texts], np.float32)[:, None]
  return np.concatenate([np.asarray(embeddings, np.float32), cues], axis=1)
