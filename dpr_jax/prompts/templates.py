"""Natural-language steering prompts for the recommender: templates, surface forms and splits.

Users steer the recommender with short requests. docs/protocol.md names three families:

* ``positive`` -- asks for more of a tag ("I'm in the mood for a {tag} film tonight");
* ``negative`` -- asks to avoid a tag ("anything but a {tag} movie, please");
* ``nuanced``  -- describes the wish without naming the tag ("something that will make me laugh"
  -> Comedy). A nuanced prompt may carry several tags ("cartoons the little ones can watch" ->
  Animation and Children's).

Design
------
Tags. ``ml-1m`` uses the 18 genres exactly as spelled in ``movies.dat``; ``mind`` uses the 17
news categories of MIND-small (``news.tsv`` column 2). Wording follows the domain: films and
movies for ML-1M; news, stories, articles, coverage and headlines for MIND.

Surface forms. A tag is never a fixed phrase: ``SURFACE_FORMS[domain][tag]`` lists paraphrases
("Sci-Fi" -> "sci-fi", "science fiction", "sci fi"). The first form is the canonical one. Every
form reads as a modifier in front of a noun ("a sci-fi film", "more TV news"), so explicit
templates always follow ``{tag}`` with a noun. :func:`render` keeps the result grammatical: "a"
becomes "an" before a vowel sound, a noun the form already names is dropped ("a {tag} film" with
"film noir" -> "a film noir"; "{tag} news" with "news" -> "news"), and a form opening a sentence is
capitalised.

Splits. Everything is split by hand, fixed in the data files (no random draw at import): every
explicit family has 11 training and 5 held-out evaluation templates per domain; every tag has 4
training and 2 held-out nuanced prompts of its own (multi-tag prompts count for each tag they
carry). No evaluation template or nuanced text is ever used in training. Training prompts use
every surface form; evaluation prompts use the canonical form only, so evaluation measures
generalisation to unseen *phrasings* of the request, not to unseen tag names.

Nuanced texts never contain a tag name or surface form of a tag they carry (checked by the tests,
case-insensitively, as whole words, plurals included).

Ordering is deterministic: template-major, then tag (in the order asked for), then surface form;
nuanced prompts by tag (in the order asked for), then as written here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import re
import types
from collections.abc import Mapping, Sequence

from dpr_jax.errors import UserError

DOMAINS: tuple[str, ...] = ("ml-1m", "mind")
FAMILIES: tuple[str, ...] = ("positive", "negative", "nuanced")
SPLITS: tuple[str, ...] = ("train", "eval")
SLOT = "{tag}"

_POLARITY = {"positive": 1, "negative": -1, "nuanced": 1}


class PromptError(UserError, ValueError):
  """An unknown domain, family, split or tag (also a ValueError), or a malformed template."""


@dataclasses.dataclass(frozen=True)
class Prompt:
  """One prompt text with the tags it is about.

  Attributes:
    text: what the user types.
    tags: the tags the prompt is about; one for explicit templates, one or more for nuanced ones.
    polarity: +1 asks for the tags (positive, nuanced), -1 asks to avoid them (negative).
    family: "positive", "negative" or "nuanced".
    split: "train" or "eval".
  """

  text: str
  tags: tuple[str, ...]
  polarity: int
  family: str
  split: str


# ------------------------------------------------------------------------------------------ data
# The text lives in templates/<domain>.json (data only; templates/README.md gives the format):
#   tags            the domain's tags, in the data's order
#   surface_forms   {tag: [form, ...]}, the canonical (evaluation) form first
#   templates       {family: {split: [template with {tag}, ...]}}: 11 training, then 5 held-out
#                   evaluation templates per family; {tag} always followed by a noun
#   nuanced         {tag: {split: [text | {"text", "tags"}]}}: 4 training and 2 held-out texts
#                   per tag; a plain string carries only the tag it is listed under, an object
#                   every tag it names (the one it is listed under included)
#   combined        held-out "ask for {pos}, exclude {neg}" sentences (evaluation only: nothing
#                   is trained on them); both slots stand where a modifier reads naturally

_Entry = str | tuple[str, tuple[str, ...]]


def _load(domain: str) -> dict:
  path = importlib.resources.files("dpr_jax.prompts") / "templates" / f"{domain}.json"
  data = json.loads(path.read_text(encoding="utf-8"))
  entry = lambda e: e if isinstance(e, str) else (e["text"], tuple(e["tags"]))  # noqa: E731
  return {
      "tags": tuple(data["tags"]),
      "surface": {t: tuple(forms) for t, forms in data["surface_forms"].items()},
      "templates": {f: {s: tuple(v) for s, v in splits.items()}
                    for f, splits in data["templates"].items()},
      "nuanced": {t: {s: tuple(entry(e) for e in v) for s, v in splits.items()}
                  for t, splits in data["nuanced"].items()},
      "combined": tuple(data["combined"]),
  }


_DATA = {domain: _load(domain) for domain in ("ml-1m", "mind")}

# ------------------------------------------------------------------------- frozen public tables


def _freeze_templates(
    table: dict[str, dict[str, tuple[str, ...]]]) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
  return types.MappingProxyType(
      {family: types.MappingProxyType(dict(splits)) for family, splits in table.items()})


def _flatten_nuanced(
    table: dict[str, dict[str, tuple[_Entry, ...]]],
    tags: tuple[str, ...]) -> Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]:
  """{tag: {split: entries}} -> {split: ((text, tags), ...)}, tags in the domain's tag order."""
  order = {t: i for i, t in enumerate(tags)}
  out: dict[str, list[tuple[str, tuple[str, ...]]]] = {s: [] for s in SPLITS}
  for primary, splits in table.items():
    for split in SPLITS:
      for entry in splits[split]:
        text, carried = (entry, (primary,)) if isinstance(entry, str) else entry
        unknown = [t for t in carried if t not in order]
        if primary not in carried or unknown:
          raise AssertionError(f"nuanced prompt {text!r} under {primary!r}: tags {carried}")
        out[split].append((text, tuple(sorted(carried, key=order.__getitem__))))
  return types.MappingProxyType({s: tuple(v) for s, v in out.items()})


_TAGS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {domain: d["tags"] for domain, d in _DATA.items()})

SURFACE_FORMS: Mapping[str, Mapping[str, tuple[str, ...]]] = types.MappingProxyType(
    {domain: types.MappingProxyType(d["surface"]) for domain, d in _DATA.items()})
"""``SURFACE_FORMS[domain][tag]``: paraphrases of the tag, canonical (evaluation) form first."""

TEMPLATES: Mapping[str, Mapping[str, Mapping[str, tuple[str, ...]]]] = types.MappingProxyType(
    {domain: _freeze_templates(d["templates"]) for domain, d in _DATA.items()})
"""``TEMPLATES[domain][family][split]``: explicit templates ("positive"/"negative") with a {tag}."""

COMBINED: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {domain: d["combined"] for domain, d in _DATA.items()})
"""``COMBINED[domain]``: held-out templates with a ``{pos}`` and a ``{neg}`` slot."""

NUANCED: Mapping[str, Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]] = (
    types.MappingProxyType({domain: _flatten_nuanced(d["nuanced"], d["tags"])
                            for domain, d in _DATA.items()}))
"""``NUANCED[domain][split]``: hand-written ``(text, tags)`` pairs that never name their tags."""

# -------------------------------------------------------------------------------------- helpers


def _check_domain(domain: str) -> None:
  if domain not in DOMAINS:
    raise PromptError(f"unknown prompt domain {domain!r}; expected one of {', '.join(DOMAINS)}")


def _check_tags(domain: str, tags: Sequence[str]) -> tuple[str, ...]:
  """Validates ``tags`` against the domain and drops repeats, keeping the first occurrence."""
  if isinstance(tags, str):
    raise TypeError(f"tags must be a sequence of tag names, not the string {tags!r}")
  known = set(_TAGS[domain])
  unknown = [t for t in tags if t not in known]
  if unknown:
    raise PromptError(
        f"unknown {domain} tag(s) {', '.join(map(repr, unknown))}; "
        f"expected some of {', '.join(_TAGS[domain])}")
  return tuple(dict.fromkeys(tags))


_SAME_NOUN: tuple[frozenset[str], ...] = (
    frozenset({"film", "films", "movie", "movies", "cinema"}),
    frozenset({"news"}),
)
_ARTICLE = re.compile(r"(?:^|(?<=\s))([Aa])n? $")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)$")


def _vowel_sound(surface: str) -> bool:
  """Whether ``surface`` starts with a vowel sound ("an animated", but "a US and Canada")."""
  word = surface.split()[0]
  if word[:1] == "U" and word[:2].isupper():  # an acronym said "you-..."
    return False
  low = word.lower()
  if low.startswith(("uni", "use", "eu", "one")):
    return False
  return low[:1] in "aeiou" or low.startswith(("honest", "hour", "heir"))


def render(template: str, surface: str) -> str:
  """Fills the ``{tag}`` slot of ``template`` with ``surface`` and tidies the grammar.

  "a" before the slot becomes "an" before a vowel sound; a noun right after the slot that the
  surface form already names is dropped ("a {tag} film" + "film noir" -> "a film noir"); a surface
  form that opens a sentence is capitalised ("{tag} films tonight" -> "Sci-fi films tonight").

  Raises:
    PromptError: ``template`` does not hold exactly one ``{tag}`` and no other braces, or
      ``surface`` is blank or holds a brace.
  """
  if template.count(SLOT) != 1 or "{" in template.replace(SLOT, "") or "}" in template.replace(
      SLOT, ""):
    raise PromptError(f"template {template!r} must hold exactly one {SLOT} and no other braces")
  surface = surface.strip()
  if not surface or "{" in surface or "}" in surface:
    raise PromptError(f"bad surface form {surface!r} for template {template!r}")
  before, after = template.split(SLOT)
  words = set(re.findall(r"[a-z]+", surface.lower()))
  nxt = re.match(r" ([A-Za-z]+)\b", after)
  if nxt and any(nxt.group(1).lower() in g and words & g for g in _SAME_NOUN):
    after = after[nxt.end():]
  art = _ARTICLE.search(before)
  if art:
    a = art.group(1) + ("n" if _vowel_sound(surface) else "")
    before = before[:art.start()] + a + " "
  elif _SENTENCE_START.search(before):
    surface = surface[0].upper() + surface[1:]
  return before + surface + after


# ------------------------------------------------------------------------------------------- API


def tags_for(domain: str) -> tuple[str, ...]:
  """The tags of ``domain``: ML-1M genres as in movies.dat, or MIND news categories."""
  _check_domain(domain)
  return _TAGS[domain]


def prompts_for(domain: str, tags: Sequence[str], family: str, split: str) -> list[Prompt]:
  """The prompts of one family and split about ``tags``.

  Explicit families ("positive", "negative"): every template of the split x every tag (in the
  order given) x every surface form of the tag for "train", the canonical (first) form only for
  "eval". "nuanced": the hand-written prompts of the split that carry at least one of ``tags``,
  grouped by the first of ``tags`` they carry, each once. ``Prompt.tags`` is always a subset of
  ``tags``: a nuanced prompt keeps the carried tags that were asked for (``NUANCED`` has them
  all), so callers can index ``Prompt.tags`` with their own tag list.

  Raises:
    PromptError (a ValueError): unknown domain, family, split or tag (the message names it).
  """
  _check_domain(domain)
  if family not in FAMILIES:
    raise PromptError(f"unknown prompt family {family!r}; expected one of {', '.join(FAMILIES)}")
  if split not in SPLITS:
    raise PromptError(f"unknown prompt split {split!r}; expected one of {', '.join(SPLITS)}")
  wanted = _check_tags(domain, tags)
  polarity = _POLARITY[family]
  out: list[Prompt] = []
  if family == "nuanced":
    entries = NUANCED[domain][split]
    seen: set[str] = set()
    for tag in wanted:
      for text, carried in entries:
        if tag in carried and text not in seen:
          seen.add(text)
          kept = tuple(t for t in carried if t in wanted)
          out.append(Prompt(text, kept, polarity, family, split))
    return out
  for template in TEMPLATES[domain][family][split]:
    for tag in wanted:
      forms = SURFACE_FORMS[domain][tag]
      for surface in (forms if split == "train" else forms[:1]):
        out.append(Prompt(render(template, surface), (tag,), polarity, family, split))
  return out


def combined_prompt(domain: str, template: str, pos: str, neg: str) -> str:
  """``template`` of :data:`COMBINED` with the canonical forms of tags ``pos`` and ``neg``."""
  _check_domain(domain)
  _check_tags(domain, (pos, neg))
  if template.count("{pos}") != 1 or template.count("{neg}") != 1:
    raise PromptError(f"combined template {template!r} must hold one {{pos}} and one {{neg}}")
  hole = "\x00"
  first = render(template.replace("{pos}", SLOT).replace("{neg}", hole),
                 SURFACE_FORMS[domain][pos][0])
  return render(first.replace(hole, SLOT), SURFACE_FORMS[domain][neg][0])


def all_prompts(domain: str, tags: Sequence[str] | None = None) -> list[Prompt]:
  """Every prompt about ``tags`` (default: all tags of the domain), family-major then split."""
  chosen = tags_for(domain) if tags is None else tags
  return [p for family in FAMILIES for split in SPLITS
          for p in prompts_for(domain, chosen, family, split)]


def fingerprint(domain: str) -> str:
  """sha256 of the domain's templates, surface forms and nuanced prompts (for results files)."""
  _check_domain(domain)
  blob = json.dumps({
      "tags": _TAGS[domain],
      "surface_forms": {t: SURFACE_FORMS[domain][t] for t in _TAGS[domain]},
      "templates": {f: dict(s) for f, s in TEMPLATES[domain].items()},
      "nuanced": dict(NUANCED[domain]),
      "combined": COMBINED[domain],
  }, sort_keys=True, ensure_ascii=True)
  return hashlib.sha256(blob.encode("utf-8")).hexdigest()
