"""What the DPR head reads of a prompt: its sentence embedding plus a lexical negation cue.

Why the cue: all-MiniLM-L6-v2 encodes negation weakly. A linear probe on the embeddings alone
separates positive from negative *training* templates (99.8%) but reaches only 80% on held-out
templates and calls a third of the (positive) nuanced prompts negative, so a router that sees
the embedding alone cannot keep "more X" and "no X" apart on phrasings it has not seen. The cue
is 1.0 when the text contains a generic English negation / aversion expression (the list below,
written as a general lexicon, with ambiguous words such as "stop", "over" or "drop" left out),
else 0.0; the router and the experts learn how much to trust it.
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


def prompt_features(embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
  """float32[n, D_t + 1]: ``[embedding, negation cue]`` per prompt."""
  cues = np.array([negation_cue(t) for t in texts], np.float32)[:, None]
  return np.concatenate([np.asarray(embeddings, np.float32), cues], axis=1)
