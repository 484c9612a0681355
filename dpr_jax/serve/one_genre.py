"""A request that is one genre alone: "horror", "Westerns!", "cartoons", "sports".

The parsers learnt requests as sentences; typed alone, some genre names are read as nothing
("horror", "musical", "western" with the README's ML-1M parsers, every MIND category with a
small run's), though a single genre word can only mean "this, please". So a request that is
nothing but one genre's name or one of the generator's surface forms of it -- case, surrounding
punctuation, a plural and a trailing "please" aside -- is read as wanting that genre, whatever
the parsers say; every other request is left to them. Serving only: the steering tasks read
their requests with the parsers alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dpr_jax.models.parser import Parse
from dpr_jax.prompts.symbol_words import spell_out
from dpr_jax.serve.titles import BARE_AFTER, words


def genre_words(domain: str, tag_names: Sequence[str]) -> dict[str, set[str]]:
  """Each tag's name and the generator's surface forms of it (training and held-out; none for
  a domain the generator does not know), by their words (dpr_jax.serve.titles.words), to the
  tags they name."""
  from dpr_jax.prompts import generator

  known = generator.DOMAIN_TAGS.get(domain, ())
  owners: dict[str, set[str]] = {}
  for tag in tag_names:
    forms = [tag] + ([f for split in generator.SPLITS
                      for f in generator.surface_forms(domain, tag, split)] if tag in known else [])
    for form in forms:
      owners.setdefault(words(form), set()).add(tag)
  owners.pop("", None)
  return owners


def genre_forms(domain: str, tag_names: Sequence[str]) -> dict[str, str]:
  """:func:`genre_words` to the one tag each names (a form of two tags is left out)."""
  return {w: next(iter(tags)) for w, tags in genre_words(domain, tag_names).items()
          if len(tags) == 1}


def genre_alone(text: str, forms: dict[str, str]) -> str | None:
  """The tag ``text`` is alone (module docstring), or None; a symbol that says "no" is a word
  here as for the parsers ("🚫 horror" is "no horror", dpr_jax.prompts.symbol_words)."""
  typed = words(spell_out(text)).split()
  while typed and typed[-1] in BARE_AFTER:  # "comedy please"
    typed.pop()
  key = " ".join(typed)
  if not key:
    return None
  for k in (key, key + "s", key + "es", key[:-1] if key.endswith("s") else "",
            key[:-3] + "y" if key.endswith("ies") else ""):
    if k in forms:
      return forms[k]
  return None


def reading_genres_alone(parse: Callable[[Sequence[str]], list[Parse]],
                         forms: dict[str, str]) -> Callable[[Sequence[str]], list[Parse]]:
  """``parse`` (texts -> [Parse]) with a request that is one genre alone read as wanting it
  (probability 1: read by rule) where the parsers read anything else."""

  def read(texts: Sequence[str]) -> list[Parse]:
    out = list(parse(texts))
    for i, text in enumerate(texts):
      tag = genre_alone(text, forms)
      if tag is not None and not (len(out[i].want) == 1 and out[i].want[0][0] == tag
                                  and not out[i].avoid):
        out[i] = Parse(((tag, 1.0),), ())
    return out

  return read
