"""Compositional generator of everyday requests, with labels, for training a request parser.

A request is a *construction* (a template such as ``"{X} but no {Y}"``) whose slots are filled
with *surface forms* of tags (``"scary movies"`` for Horror, ``"my 401k"`` for finance) and, for
``{N}``, a domain noun (``"movie"``, ``"stories"``). The data live in ``generator/<domain>.json``
next to this module (format in ``generator/README.md``). Every form and construction belongs to
one split: ``"train"`` requests use only train constructions and train forms, ``"heldout"``
requests only heldout ones, so a held-out score measures generalisation to unseen phrasings *and*
unseen words for a tag.

Slots: ``{X}``/``{X2}`` hold wanted tags, ``{Y}``/``{Y2}`` avoided tags, ``{N}`` a noun. Kinds:
``positive`` (X, optional X2), ``negative`` (Y, optional Y2), ``combined`` (X and Y) and ``vague``
(no tag slot).

Compounds: a tag slot written directly before a hyphen (``"keep it {Y}-free"``, ``"something
{X}-heavy"``) is a *compound slot*. It takes one of the tag's ``compound_forms`` (single words
such as ``"horror"`` or ``"gore"``, split like the surface forms), since a noun phrase such as
``"scary movies"`` does not take a suffix. People write avoidance this way ("horror-free
please") with no negation word of its own, so the parser has to learn the suffix; constructions
with other suffixes ("-heavy", "-themed") and with "-free" on a word that is no tag ("a
stress-free night of {X}") keep the hyphen itself from meaning "avoid". (Ours:
reports/experiments.md, 2026-12-06 session 16.)

Two clauses: with ``composed > 0`` that share of the combined requests is a positive and a
negative construction of the split written one after the other (either order; a clause that ends
in ``.``, ``?`` or ``!`` is followed by the next one, any other by a joiner such as ``", "`` or
``" but "``), as people write a wish and an exclusion in one go; stance then has to be read per
clause, not from the request's one negation word. With ``composed_single > 0`` that share of the
positive (negative) requests is two one-tag positive (negative) constructions joined the same
way, so that two clauses do not by themselves mean that one of them avoids. (Ours; both off by
default, measured on validation: reports/experiments.md, 2026-12-05 afternoon.)

Randomness: structural draws (kind, construction, tags, forms, nouns) come from
``default_rng([seed, 0])``; the noise of request ``i`` from ``default_rng([seed, 1, i])``. The
noise-free text of a request therefore does not depend on ``noise``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import re
from typing import Any, Sequence

import numpy as np

SPLITS = ("train", "heldout")
KINDS = ("positive", "negative", "combined", "vague")
DOMAIN_TAGS: dict[str, tuple[str, ...]] = {
    "ml-1m": ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
              "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
              "Thriller", "War", "Western"),
    "mind": ("autos", "entertainment", "finance", "foodanddrink", "health", "kids", "lifestyle",
             "middleeast", "movies", "music", "news", "northamerica", "sports", "travel", "tv",
             "video", "weather"),
}
TAG_SLOTS = ("X", "X2", "Y", "Y2")  # canonical order of ``GeneratedRequest.forms``
SLOTS = TAG_SLOTS + ("N",)
# Which tag slots a kind requires / allows.
_REQUIRED = {"positive": {"X"}, "negative": {"Y"}, "combined": {"X", "Y"}, "vague": set()}
_ALLOWED = {"positive": {"X", "X2"}, "negative": {"Y", "Y2"}, "combined": {"X", "X2", "Y", "Y2"},
            "vague": set()}

# Words a typo never touches (also as a part of a hyphenated word: the "free" of "gore-free"):
# negations and the words that carry an avoid / a preference.
PROTECTED = frozenset("""
    no not nor none nothing never neither without but except instead minus less fewer rather
    avoid skip hate stop enough tired sick over done pass hide mute block spare steer clear hold
    away last again dealbreaker whatsoever anything isn't doesn't don't won't can't cannot aren't
    couldn't wouldn't shouldn't didn't wasn't haven't isnt doesnt dont wont cant arent couldnt
    wouldnt shouldnt didnt wasnt havent out drop bores than free
    """.split())
FILLERS_START = ("lol", "ok so", "hmm", "haha")
FILLERS_END = ("lol", "pls", "tonight", "haha", "hmm")
# Between the two clauses of a composed request whose first clause has no final punctuation.
JOINERS = (", ", "; ", ", but ", " but ", " and ", " - ", ". ")

_SLOT_RE = re.compile(r"\{([^{}]*)\}")
_COMPOUND_RE = re.compile(r"\{(X|X2|Y|Y2)\}-[a-z]")  # a tag slot that takes a suffix
_COMPOUND_FORM_RE = re.compile(r"^[a-z0-9]+(?:['-][a-z0-9]+)*$")
_FORM_RE = re.compile(r"^[a-z0-9][a-z0-9 '\-]*[a-z0-9]$|^[a-z0-9]$")
_WORD_RE = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")


@dataclasses.dataclass(frozen=True)
class GeneratedRequest:
  """One generated request and its labels."""

  text: str
  want: tuple[str, ...]
  avoid: tuple[str, ...]
  kind: str  # one of KINDS
  construction: str  # the construction template it came from
  forms: tuple[str, ...]  # surface (or compound) forms used, in slot order X, X2, Y, Y2 (aligned with want + avoid)
  parts: tuple[str, ...] = ()  # the two constructions a two-clause request joins; else empty


def _phrases(text: str) -> set[str]:
  """Every run of whole words of ``text`` (lower-cased), e.g. "a b-c" -> a, b, c, a b, b-c, a b-c."""
  text = text.lower()
  words = [m.span() for m in re.finditer(r"[a-z0-9]+", text)]
  return {text[a:b] for i, (a, _) in enumerate(words) for _, b in words[i:]}


def _check_items(where: str, value: Any) -> list[tuple[str, str]]:
  if not isinstance(value, list) or not value:
    raise ValueError(f"{where}: expected a non-empty list of {{'text', 'split'}} items")
  out = []
  for i, item in enumerate(value):
    if not isinstance(item, dict) or set(item) != {"text", "split"}:
      raise ValueError(f"{where}[{i}]: expected an object with exactly 'text' and 'split'")
    text, split = item["text"], item["split"]
    if not isinstance(text, str) or not text.strip():
      raise ValueError(f"{where}[{i}]: empty or non-string text")
    if split not in SPLITS:
      raise ValueError(f"{where}[{i}] {text!r}: bad split {split!r} (expected one of {SPLITS})")
    out.append((text, split))
  return out


def _form_table(domain: str, key: str, what: str, table: dict, pattern: re.Pattern, shape: str,
                nouns: Sequence[str]) -> dict[str, tuple[str, str]]:
  """``text -> (tag, split)`` of a form table (``surface_forms``, ``compound_forms``): known tags,
  well-formed items, each text of ``pattern``, once in the table and not a noun."""
  out: dict[str, tuple[str, str]] = {}
  for tag, items in table.items():
    if tag not in DOMAIN_TAGS[domain]:
      raise ValueError(f"{domain}: unknown tag {tag!r} in {key}")
    for text, split in _check_items(f"{domain}: {key}[{tag!r}]", items):
      if not pattern.match(text):
        raise ValueError(f"{domain}: {what} {text!r} of {tag!r} must be {shape}")
      if text in out:
        raise ValueError(f"{domain}: {what} {text!r} appears twice ({out[text][0]!r} and {tag!r})")
      out[text] = (tag, split)
      if text in nouns:
        raise ValueError(f"{domain}: {what} {text!r} of {tag!r} is also a noun")
  return out


def validate_grammar(data: Any, domain: str) -> dict:
  """Check a parsed grammar of ``domain``; returns it, or raises ValueError naming the problem."""
  if domain not in DOMAIN_TAGS:
    raise ValueError(f"unknown domain {domain!r} (expected one of {sorted(DOMAIN_TAGS)})")
  keys = {"noun", "surface_forms", "constructions"}
  if not isinstance(data, dict) or not keys <= set(data) <= keys | {"compound_forms"}:
    raise ValueError(f"{domain}: expected the keys 'noun', 'surface_forms', 'constructions' "
                     "(and optionally 'compound_forms')")
  nouns = data["noun"]
  if not isinstance(nouns, list) or not nouns or not all(isinstance(n, str) and n for n in nouns):
    raise ValueError(f"{domain}: 'noun' must be a non-empty list of strings")
  if len(set(nouns)) != len(nouns):
    raise ValueError(f"{domain}: duplicate noun")
  forms = data["surface_forms"]
  if not isinstance(forms, dict) or not forms:
    raise ValueError(f"{domain}: 'surface_forms' must be a non-empty object")
  owner = {text: tag for text, (tag, _) in _form_table(
      domain, "surface_forms", "surface form", forms, _FORM_RE,
      "lower-case letters, digits, spaces, apostrophes or hyphens", nouns).items()}
  # A form that contains another tag's form would give a request two readings.
  for a, tag_a in owner.items():
    for b in sorted(_phrases(a)):
      if owner.get(b, tag_a) != tag_a:
        raise ValueError(f"{domain}: surface form {a!r} of {tag_a!r} contains {b!r} of {owner[b]!r}")
  compounds = data.get("compound_forms", {})
  if not isinstance(compounds, dict):
    raise ValueError(f"{domain}: 'compound_forms' must be an object")
  for text, (tag, split) in _form_table(
      domain, "compound_forms", "compound form", compounds, _COMPOUND_FORM_RE,
      "one lower-case word (letters, digits, inner apostrophes or hyphens)", nouns).items():
    same = [it["split"] for it in forms.get(tag, []) if it["text"] == text]
    if same and same[0] != split:
      raise ValueError(f"{domain}: compound form {text!r} of {tag!r} is {split} but the same surface "
                       f"form is {same[0]}")
    for b in sorted(_phrases(text)):
      if owner.get(b, tag) != tag:
        raise ValueError(f"{domain}: compound form {text!r} of {tag!r} contains {b!r} of {owner[b]!r}")
  cons = data["constructions"]
  if not isinstance(cons, dict) or set(cons) != set(KINDS):
    raise ValueError(f"{domain}: 'constructions' must have exactly the kinds {KINDS}")
  seen: set[str] = set()
  for kind in KINDS:
    for text, _ in _check_items(f"{domain}: constructions[{kind!r}]", cons[kind]):
      if text in seen:
        raise ValueError(f"{domain}: construction {text!r} appears twice")
      seen.add(text)
      if _SLOT_RE.sub("", text).count("{") or _SLOT_RE.sub("", text).count("}"):
        raise ValueError(f"{domain}: construction {text!r} has an unbalanced brace")
      slots = _SLOT_RE.findall(text)
      for slot in slots:
        if slot not in SLOTS:
          raise ValueError(f"{domain}: construction {text!r} has unknown slot {{{slot}}}")
      tag_slots = [s for s in slots if s != "N"]
      if len(set(tag_slots)) != len(tag_slots):
        raise ValueError(f"{domain}: construction {text!r} repeats a slot")
      missing = _REQUIRED[kind] - set(tag_slots)
      if missing:
        raise ValueError(f"{domain}: {kind} construction {text!r} is missing slot {{{sorted(missing)[0]}}}")
      extra = set(tag_slots) - _ALLOWED[kind]
      if extra:
        raise ValueError(f"{domain}: {kind} construction {text!r} may not have slot {{{sorted(extra)[0]}}}")
      if "X2" in tag_slots and "X" not in tag_slots or "Y2" in tag_slots and "Y" not in tag_slots:
        raise ValueError(f"{domain}: construction {text!r} has a second slot without the first")
      for form in sorted(_phrases(_SLOT_RE.sub(" | ", text))):
        if form in owner:
          raise ValueError(f"{domain}: construction {text!r} contains surface form {form!r} of {owner[form]!r}")
  # Every tag a compound slot can be drawn for must have a compound form in that split.
  first = next((c["text"] for k in KINDS for c in cons[k] if _COMPOUND_RE.search(c["text"])), None)
  if first is not None:
    for tag, items in forms.items():
      for split in {it["split"] for it in items}:
        if not any(it["split"] == split for it in compounds.get(tag, [])):
          raise ValueError(f"{domain}: construction {first!r} has a compound slot, but {tag!r} "
                           f"has no {split} compound form")
  return data


@functools.lru_cache(maxsize=None)
def load_grammar(domain: str) -> dict:
  """The parsed, validated grammar of ``domain`` (cached: do not mutate)."""
  if domain not in DOMAIN_TAGS:
    raise ValueError(f"unknown domain {domain!r} (expected one of {sorted(DOMAIN_TAGS)})")
  path = importlib.resources.files("dpr_jax.prompts") / "generator" / f"{domain}.json"
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise ValueError(f"{domain}.json: not valid JSON ({e})") from e
  return validate_grammar(data, domain)


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r} (expected one of {SPLITS})")


@functools.lru_cache(maxsize=None)
def surface_forms(domain: str, tag: str, split: str) -> tuple[str, ...]:
  """The surface forms of ``tag`` in ``split`` (empty if the tag has none there)."""
  _check_split(split)
  grammar = load_grammar(domain)
  if tag not in DOMAIN_TAGS[domain]:
    raise ValueError(f"unknown tag {tag!r} for domain {domain!r}")
  return tuple(it["text"] for it in grammar["surface_forms"].get(tag, []) if it["split"] == split)


@functools.lru_cache(maxsize=None)
def compound_forms(domain: str, tag: str, split: str) -> tuple[str, ...]:
  """The one-word forms of ``tag`` in ``split`` that a compound slot (``{Y}-free``) takes."""
  _check_split(split)
  grammar = load_grammar(domain)
  if tag not in DOMAIN_TAGS[domain]:
    raise ValueError(f"unknown tag {tag!r} for domain {domain!r}")
  return tuple(it["text"] for it in grammar.get("compound_forms", {}).get(tag, [])
               if it["split"] == split)


def compound_slots(template: str) -> frozenset[str]:
  """The tag slots of ``template`` written directly before a hyphen (module docstring)."""
  return frozenset(_COMPOUND_RE.findall(template))


@functools.lru_cache(maxsize=None)
def constructions(domain: str, kind: str, split: str) -> tuple[str, ...]:
  """The construction templates of ``kind`` in ``split``."""
  _check_split(split)
  if kind not in KINDS:
    raise ValueError(f"unknown kind {kind!r} (expected one of {KINDS})")
  return tuple(it["text"] for it in load_grammar(domain)["constructions"][kind] if it["split"] == split)


@functools.lru_cache(maxsize=None)
def _parsed(template: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(literal pieces, slot names) with len(pieces) == len(slots) + 1."""
  pieces = _SLOT_RE.split(template)
  return tuple(pieces[0::2]), tuple(pieces[1::2])


def _render(template: str, fill: dict[str, str]) -> tuple[str, list[tuple[int, int]]]:
  """Fill a template; returns the text and the (start, end) spans of the tag-slot fillers."""
  pieces, slots = _parsed(template)
  out, spans, pos = [], [], 0
  for piece, slot in zip(pieces, slots):
    out.append(piece)
    pos += len(piece)
    value = fill[slot]
    if slot != "N":
      spans.append((pos, pos + len(value)))
    out.append(value)
    pos += len(value)
  out.append(pieces[-1])
  return "".join(out), spans


def _typo(text: str, spans: list[tuple[int, int]], rng: np.random.Generator) -> str:
  """One swap / drop / double in a word of >= 5 letters, not a protected word, outside the
  first 3 letters of every slot filler; ``text`` unchanged if there is no such place."""
  forbidden = {i for start, end in spans for i in range(start, min(start + 3, end))}
  edits = []
  for m in _WORD_RE.finditer(text):
    word = m.group()
    if sum(c.isalpha() for c in word) < 5 or word.lower() in PROTECTED:
      continue
    parts = {m.start() + i for p in re.finditer(r"[A-Za-z]+", word) if p.group().lower() in PROTECTED
             for i in range(p.start(), p.end())}
    for i in range(m.start(), m.end()):
      if i in parts:
        continue
      if i in forbidden or not text[i].isalpha():
        continue
      edits.append(("drop", i))
      edits.append(("double", i))
      j = i + 1
      if j < m.end() and j not in forbidden and text[j].isalpha() and text[j] != text[i]:
        edits.append(("swap", i))
  if not edits:
    return text
  op, i = edits[int(rng.integers(len(edits)))]
  if op == "drop":
    return text[:i] + text[i + 1:]
  if op == "double":
    return text[:i] + text[i] + text[i:]
  return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def _strip_punctuation(text: str, everything: bool) -> str:
  """Drop the final punctuation, or all punctuation except apostrophes / hyphens inside words."""
  if not everything:
    return re.sub(r"[.!?]+\s*$", "", text).rstrip()
  text = re.sub(r"[^\w\s'-]", " ", text)
  text = re.sub(r"(?<![A-Za-z0-9])['-]|['-](?![A-Za-z0-9])", " ", text)
  return re.sub(r"\s+", " ", text).strip()


def _add_noise(text: str, spans: list[tuple[int, int]], rng: np.random.Generator) -> str:
  """Apply a random non-empty subset of: typo, lower-case, drop punctuation, filler word."""
  use = rng.random(4) < 0.5
  if not use.any():
    use[int(rng.integers(4))] = True
  if use[0]:
    text = _typo(text, spans, rng)
  if use[1]:
    text = text.lower()
  if use[2]:
    text = _strip_punctuation(text, everything=bool(rng.random() < 0.5)) or text
  if use[3]:
    if rng.random() < 0.5:
      text = f"{FILLERS_START[int(rng.integers(len(FILLERS_START)))]} {text}"
    else:
      text = f"{text} {FILLERS_END[int(rng.integers(len(FILLERS_END)))]}"
  return text


def _tag_slots(template: str) -> tuple[str, ...]:
  return tuple(s for s in TAG_SLOTS if s in _parsed(template)[1])


def compose(first: str, second: str, joiner: str) -> str:
  """Two construction templates as one request: ``first``'s final ``.``/``?``/``!`` ends a
  sentence (then a space), otherwise ``joiner`` links them; the second clause starts lower-case
  after a joiner other than ``". "`` ("Show me" -> "show me"; "I'm" stays)."""
  first, second = first.strip(), second.strip()
  if first[-1] in ".?!":
    return f"{first} {second}"
  if joiner != ". " and re.match(r"[A-Z][a-z]", second):
    second = second[0].lower() + second[1:]
  return f"{first}{joiner}{second}"


def generate(domain: str, split: str, n: int, seed: int, tags: Sequence[str] | None = None,
             kind_shares: Sequence[float] = (0.35, 0.35, 0.2, 0.1),
             noise: float = 0.3, forms_from: str | None = None,
             composed: float = 0.0, composed_single: float = 0.0) -> list[GeneratedRequest]:
  """Draw ``n`` labelled requests of ``split``; deterministic for a given ``seed``.

  Each request: a kind by ``kind_shares`` (over KINDS), a construction of that kind, distinct
  tags uniformly from ``tags`` (default: every domain tag with forms in ``split``), a form of
  ``split`` per tag slot, a noun per ``{N}``; with probability ``noise``, noise (see _add_noise).
  ``forms_from`` takes the surface forms from another split than the constructions (a
  diagnosis: which of the two unseen parts a reader fails on); default ``split``. ``composed``:
  the share of combined requests written as a positive and a negative construction of the
  split one after the other (module docstring); ``composed_single``: the share of positive and of
  negative requests written as two one-tag constructions of their kind; 0 and 0 draw exactly the
  requests it always did.
  """
  _check_split(split)
  construction_split, split = split, forms_from or split
  _check_split(split)
  grammar = load_grammar(domain)
  if n < 0:
    raise ValueError(f"n must be >= 0, got {n}")
  if not 0.0 <= noise <= 1.0:
    raise ValueError(f"noise must be in [0, 1], got {noise}")
  for name, value in (("composed", composed), ("composed_single", composed_single)):
    if not 0.0 <= value <= 1.0:
      raise ValueError(f"{name} must be in [0, 1], got {value}")
  shares = np.asarray(kind_shares, np.float64)
  if shares.shape != (len(KINDS),) or not np.all(np.isfinite(shares)) or np.any(shares < 0):
    raise ValueError(f"kind_shares must be {len(KINDS)} non-negative numbers, got {kind_shares!r}")
  if tags is None:
    pool = tuple(t for t in DOMAIN_TAGS[domain] if surface_forms(domain, t, split))
  else:
    pool = tuple(dict.fromkeys(tags))
    for t in pool:
      if not surface_forms(domain, t, split):
        raise ValueError(f"tag {t!r} has no {split} surface forms in {domain!r}")
  # Constructions usable with len(pool) distinct tags; kinds with none get no share.
  usable = [tuple(c for c in constructions(domain, k, construction_split)
                 if len(_tag_slots(c)) <= len(pool))
            for k in KINDS]
  shares = np.where([bool(u) for u in usable], shares, 0.0)
  if shares.sum() <= 0:
    raise ValueError(f"no construction of a kind with a positive share fits {len(pool)} tag(s)")
  shares = shares / shares.sum()
  nouns = grammar["noun"]
  forms = {t: surface_forms(domain, t, split) for t in pool}
  compounds = {t: compound_forms(domain, t, split) for t in pool}

  # One-tag constructions, for two-clause positive / negative requests.
  single = {kind: tuple(c for c in usable[KINDS.index(kind)] if len(_tag_slots(c)) == 1)
            for kind in ("positive", "negative")}
  rng = np.random.default_rng([seed, 0])
  out = []
  for i in range(n):
    k = int(rng.choice(len(KINDS), p=shares))
    template = usable[k][int(rng.integers(len(usable[k])))]
    parts: tuple[str, ...] = ()
    if composed > 0 and KINDS[k] == "combined" and rng.random() < composed:
      pos, neg = (usable[KINDS.index(kind)] for kind in ("positive", "negative"))
      parts = (pos[int(rng.integers(len(pos)))], neg[int(rng.integers(len(neg)))])
      first, second = parts if rng.random() < 0.5 else parts[::-1]
    elif (composed_single > 0 and KINDS[k] in ("positive", "negative") and single[KINDS[k]]
          and rng.random() < composed_single):
      one = single[KINDS[k]]
      parts = (one[int(rng.integers(len(one)))], one[int(rng.integers(len(one)))])
      slot = "{X}" if KINDS[k] == "positive" else "{Y}"
      first, second = parts[0], parts[1].replace(slot, slot[:2] + "2}")
    if parts:
      joined = compose(first, second, JOINERS[int(rng.integers(len(JOINERS)))])
      if len(_tag_slots(joined)) <= len(pool):
        template = joined
      else:
        parts = ()
    slots = _tag_slots(template)
    chosen = [pool[j] for j in rng.choice(len(pool), size=len(slots), replace=False)]
    bound = compound_slots(template)
    fill = {}
    for s, t in zip(slots, chosen):
      options = compounds[t] if s in bound else forms[t]
      fill[s] = options[int(rng.integers(len(options)))]
    if "N" in _parsed(template)[1]:
      fill["N"] = nouns[int(rng.integers(len(nouns)))]
    text, spans = _render(template, fill)
    if noise > 0:
      noise_rng = np.random.default_rng([seed, 1, i])
      if noise_rng.random() < noise:
        text = _add_noise(text, spans, noise_rng)
    out.append(GeneratedRequest(
        text=text,
        want=tuple(t for s, t in zip(slots, chosen) if s.startswith("X")),
        avoid=tuple(t for s, t in zip(slots, chosen) if s.startswith("Y")),
        kind=KINDS[k], construction=template, forms=tuple(fill[s] for s in slots), parts=parts))
  return out


def label_matrix(requests: Sequence[GeneratedRequest], tags: Sequence[str]) -> np.ndarray:
  """int8[n, T]: 0 = tag not mentioned, 1 = wanted, 2 = avoided."""
  index = {t: j for j, t in enumerate(tags)}
  out = np.zeros((len(requests), len(tags)), np.int8)
  for i, r in enumerate(requests):
    for value, labelled in ((1, r.want), (2, r.avoid)):
      for t in labelled:
        if t not in index:
          raise ValueError(f"request {i} labels tag {t!r}, which is not in tags")
        out[i, index[t]] = value
  return out
