"""Symbols that say "no", spelled out in words before a request is read.

The text encoder's word-piece vocabulary (all-MiniLM-L6-v2, BERT uncased) has no emoji or
dingbats: each becomes ``[UNK]``. Most of them only decorate ("romantic movie for date night ❤️"),
but a symbol that says "no" carries the request's polarity, and without it "🚫 westerns" reaches
the parser as "westerns" -- a wish, the opposite of what was typed. :func:`spell_out` turns such
a request into words the parser was trained on:

* a "no" symbol (:data:`NO`) right after words and before the end of the text, a punctuation
  mark or another symbol reacts to those words: ``"thrillers 👎"`` -> ``"no thrillers"``;
* any other "no" symbol says no to what follows: ``"🚫 westerns, a comedy"`` -> ``"no westerns,
  a comedy"``;
* in such a request a "yes" symbol (:data:`YES`) separates clauses: ``"comedy ✅ drama ❌"`` ->
  ``"comedy, no drama"``.

A request with no "no" symbol is returned unchanged, byte for byte, so every request without
one is read exactly as before (decorating emoji included). The table is short on purpose: only
symbols whose everyday meaning is refusal; a thumbs-up or a heart already reads as a wish.
"""

from __future__ import annotations

import re

# Symbols whose meaning is "no" (prohibited, cross marks, no-gesture, thumbs down, stop sign).
NO = "\U0001F6AB\u274C\u26D4\U0001F645\U0001F44E\U0001F6D1\u2716\u2717\u2718\u274E"
# Symbols whose meaning is "yes" (check marks, thumbs up, OK hand): clause breaks beside a "no".
YES = "\u2705\u2714\u2611\U0001F44D\U0001F44C"
# What may ride on a symbol: variation selectors, zero-width joiner, gender signs, skin tones.
_MODIFIERS = re.compile("[\uFE0E\uFE0F\u200D\u2640\u2642\U0001F3FB-\U0001F3FF]")
_BREAK = ",.;:!?"
# Words (no break, no symbol) right before a "no" symbol that ends its clause.
_AFTER_WORDS = re.compile(f"([^{_BREAK}{NO}{YES}]*[^\\s{_BREAK}{NO}{YES}])[!?.]*\\s*[{NO}]"
                          f"(?=\\s*(?:$|[{_BREAK}{NO}{YES}]))")


def spell_out(text: str) -> str:
  """``text`` with its "no" symbols written as words (see the module docstring); unchanged when
  it has none."""
  if not any(c in NO for c in text):
    return text
  out = _MODIFIERS.sub("", text)
  out = _AFTER_WORDS.sub(lambda m: f", no {m.group(1).strip()},", out)
  out = re.sub(f"[{NO}]", ", no ", out)
  out = re.sub(f"[{YES}]", ",", out)
  out = re.sub(r"\s+", " ", out)
  out = re.sub(r"\s*,(\s*,)*", ",", out)  # runs of clause breaks -> one
  out = re.sub(r",(?=\S)", ", ", out)
  out = re.sub(r"\b(but|and|or|yet|though|just), ", r"\1 ", out)  # "ok but ❌ drama": no break
  return out.strip(" ,") or text
