"""How a request is read before DPR steers with it: the learned parser or the rules.

A reading turns n request texts into at most two *parts* each, a positive one (what to raise)
and a negative one (what to remove), as rows of a feature table the DPR head reads
(float32[P, D_t + 1], dpr_jax.prompts.features). Evaluation, serving and the benchmarks all
steer from a :class:`Reading`, whichever reader made it (``config.dpr.reader``):

* ``"parser"`` (dpr_jax.models.parser): every tag's stance, want / avoid / none. The positive
  part is the *canonical* wording of the wanted tags, the negative part that of the avoided
  ones: the mean feature row of the domain's training templates of that tag and polarity
  (:func:`canonical_features`; for a wanted tag the positive templates, ``dpr.canonical_want``),
  so the head steers with inputs from the distribution it was trained on, whatever words the
  person used. A request in which no tag was recognised has no part and gets the unprompted
  list.
* ``"rules"``: ``dpr_jax.prompts.combine.split_request`` cuts the text into clauses by a cue
  lexicon; each part is embedded as written.

Both readers first spell out symbols that say "no" ("🚫 westerns" -> "no westerns",
dpr_jax.prompts.symbol_words): the encoder has no word piece for them. Token states for the
parser are computed once per distinct text and cached (:func:`token_inputs`), like the prompt
embeddings.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import atomic
from dpr_jax.models.parser import (Parse, RequestParser, adapted_forms, decode,
                                   ensemble_probs)
from dpr_jax.prompts import generator
from dpr_jax.prompts.combine import split_request
from dpr_jax.prompts.features import clause_cues, negation_cue
from dpr_jax.prompts.symbol_words import spell_out

READERS = ("parser", "rules")


@dataclasses.dataclass(frozen=True)
class Reading:
  """n requests read into parts.

  features: float32[P, D_t + 1] the parts' head features; positive / negative: int[n] each
  request's part rows (-1: none); part_negative: bool[P] which rows are negative parts;
  parses: the parser's :class:`Parse` per request (empty for the rules).
  """

  features: np.ndarray
  positive: np.ndarray
  negative: np.ndarray
  part_negative: np.ndarray
  parses: tuple[Parse, ...] = ()


def _each_text_once(read: Callable[[Sequence[str]], Reading]) -> Callable[[Sequence[str]], Reading]:
  """``read`` run on the distinct texts only (tasks repeat a few templates over many users)."""

  def run(texts: Sequence[str]) -> Reading:
    unique = sorted(set(texts))
    index = {u: i for i, u in enumerate(unique)}
    where = np.array([index[t] for t in texts], np.int64)
    r = read(unique)
    return dataclasses.replace(r, positive=r.positive[where], negative=r.negative[where],
                               parses=tuple(r.parses[i] for i in where) if r.parses else ())

  return run


def rules_reader(embed: Callable[[Sequence[str]], np.ndarray]) -> Callable[[Sequence[str]], Reading]:
  """The rule reader; ``embed`` maps part texts to float32[n, D_t + 1] head features."""

  @_each_text_once
  def read(texts: Sequence[str]) -> Reading:
    parts = [split_request(spell_out(t)) for t in texts]
    unique = sorted({(p, s) for r in parts for p, s in r.parts})
    row = {key: i for i, key in enumerate(unique)}
    features = (np.asarray(embed([t for t, _ in unique]), np.float32) if unique
                else np.zeros((0, 1), np.float32))
    return Reading(features=features,
                   positive=np.array([row.get((r.positive, 1), -1) for r in parts], np.int64),
                   negative=np.array([row.get((r.negative, -1), -1) for r in parts], np.int64),
                   part_negative=np.array([s < 0 for _, s in unique], bool))

  return read


CANONICAL_WANT = ("positive", "positive,nuanced")  # config.dpr.canonical_want's values


def canonical_features(bank, tag_names: Sequence[str], want: str = "positive",
                       ) -> dict[tuple[str, int], np.ndarray]:
  """{(tag, +1 / -1): float32[D_t + 1]}: the mean head features of the bank's *training*
  templates of that tag and polarity (for +1 those of the families in ``want``, a comma list,
  :data:`CANONICAL_WANT`; for -1 the negative ones), the embedding part renormalised to unit
  length."""
  if want not in CANONICAL_WANT:
    raise ValueError(f"canonical_want must be one of {CANONICAL_WANT}, got {want!r}")
  features = bank.features
  out = {}
  for tag in tag_names:
    for sign, families in ((1, tuple(want.split(","))), (-1, ("negative",))):
      rows = np.concatenate([bank.select(f, "train", tag) for f in families])
      if not len(rows):
        continue
      mean = features[rows].mean(0)
      emb = mean[:-1] / max(np.linalg.norm(mean[:-1]), 1e-9)
      out[tag, sign] = np.concatenate([emb, mean[-1:]]).astype(np.float32)
  return out


def parser_reader(parse: Callable[[Sequence[str]], list[Parse]],
                  canonical: dict[tuple[str, int], np.ndarray]) -> Callable[[Sequence[str]], Reading]:
  """The parser's reader: ``parse`` maps texts to :class:`Parse`; ``canonical`` is
  :func:`canonical_features`. A part of several tags is the renormalised mean of their rows."""

  def part(tags: tuple[str, ...], sign: int) -> np.ndarray | None:
    rows = [canonical[t, sign] for t in tags if (t, sign) in canonical]
    if not rows:
      return None
    mean = np.mean(rows, 0)
    emb = mean[:-1] / max(np.linalg.norm(mean[:-1]), 1e-9)
    return np.concatenate([emb, mean[-1:]]).astype(np.float32)

  @_each_text_once
  def read(texts: Sequence[str]) -> Reading:
    parses = parse(texts)
    keys = [(tuple(sorted(t for t, _ in p.want)), tuple(sorted(t for t, _ in p.avoid)))
            for p in parses]
    rows: dict[tuple[tuple[str, ...], int], int] = {}
    table, negative = [], []
    for want, avoid in keys:
      for tags, sign in ((want, 1), (avoid, -1)):
        if tags and (tags, sign) not in rows and (f := part(tags, sign)) is not None:
          rows[tags, sign] = len(table)
          table.append(f)
          negative.append(sign < 0)
    dim = len(next(iter(canonical.values()))) if canonical else 1
    return Reading(features=np.stack(table) if table else np.zeros((0, dim), np.float32),
                   positive=np.array([rows.get((w, 1), -1) for w, _ in keys], np.int64),
                   negative=np.array([rows.get((a, -1), -1) for _, a in keys], np.int64),
                   part_negative=np.array(negative, bool), parses=tuple(parses))

  return read


def clause_cue_inputs(texts: Sequence[str], tokenizer, max_tokens: int) -> np.ndarray:
  """float32[n, S]: per token of each request, the negation cue of its clause
  (dpr_jax.prompts.features.clause_cues; ``tokenizer``: the encoder's, which reads each text
  stripped, [CLS] first, as TextEncoder.token_states)."""
  out = np.zeros((len(texts), max_tokens), np.float32)
  stripped = [t.strip() for t in texts]
  for i, (text, enc) in enumerate(zip(stripped, tokenizer.encode_batch(stripped))):
    row = clause_cues(text, enc.offsets[:max_tokens], enc.special_tokens_mask[:max_tokens])
    out[i, :len(row)], out[i, len(row):] = row, negation_cue(text)
  return out


def token_inputs(texts: Sequence[str], cache_dir, encoder_path: str | None,
                 max_tokens: int, by_sentence: bool = False,
                 clause_cue: bool = False) -> dict[str, np.ndarray]:
  """The parser's inputs for ``texts``, cached per (texts, encoder, max_tokens, by_sentence):
  tokens float16[n, S, D_t], mask bool[n, S], cue float32[n] (the lexical negation cue) and,
  with ``clause_cue``, clause_cue float32[n, S] (:func:`clause_cue_inputs`).
  ``by_sentence``: each sentence encoded on its own (TextEncoder.token_states)."""
  from dpr_jax.prompts.bank import _cache_key
  from dpr_jax.prompts.encoder import TextEncoder, encoder_id

  name = encoder_id(encoder_path)  # includes the weights' sha256
  what = f"{name} {max_tokens}" + (" by-sentence" if by_sentence else "")
  path = atomic.as_path(cache_dir) / f"tokens-{_cache_key(texts, what)}.npz"
  out = {"cue": np.array([negation_cue(t) for t in texts], np.float32)}
  if clause_cue:
    out["clause_cue"] = clause_cue_inputs(
        texts, TextEncoder.from_pretrained(encoder_path).tokenizer, max_tokens)
  if path.exists():
    with path.open("rb") as f, np.load(f) as z:
      return {"tokens": z["tokens"], "mask": z["mask"]} | out
  tokens, mask = TextEncoder.from_pretrained(encoder_path).token_states(
      list(texts), max_tokens, by_sentence=by_sentence)
  atomic.write_with(path, lambda f: np.savez(f, tokens=tokens, mask=mask))
  atomic.write_text(path.with_suffix(".json"), json.dumps(
      {"encoder": name, "count": len(texts), "max_tokens": max_tokens,
       "by_sentence": by_sentence}))
  return {"tokens": tokens, "mask": mask} | out


# ================================================================================ the parser
def build_parser(config, num_tags: int) -> RequestParser:
  """The request parser of ``config.parser`` for ``num_tags`` tags."""
  p = config.parser
  return RequestParser(num_tags=num_tags, hidden=p.hidden, num_heads=p.num_heads,
                       max_tokens=p.max_tokens, dropout=p.dropout,
                       similarity_rank=p.similarity_rank, input_norm=p.input_norm,
                       slot_gate=p.slot_loss > 0, use_cue=p.negation_cue,
                       clause_cue=p.clause_cue)


def form_texts(domain: str, tag_names: Sequence[str]) -> tuple[list[str], list[int]]:
  """Each tag's name and its *training* surface forms (generator), with the tag index of each."""
  texts, tags = [], []
  for t, name in enumerate(tag_names):
    forms = {name.lower().replace("-", " "), *generator.surface_forms(domain, name, "train")}
    texts += sorted(forms)
    tags += [t] * len(forms)
  return texts, tags


def known_forms(domain: str, tag_names: Sequence[str], cache_dir,
                encoder: str | None) -> tuple[np.ndarray, np.ndarray]:
  """The surface forms the parser matches spans against (dpr_jax.models.parser.span_matches):
  each tag's name and its *training* forms of the generator, embedded by the frozen encoder
  (cached). Returns (float32[M, D_t] unit rows, int32[M] their tags)."""
  from dpr_jax.prompts.bank import _cached_embeddings

  texts, tags = form_texts(domain, tag_names)
  emb, _ = _cached_embeddings(atomic.as_path(cache_dir), f"forms-{domain}", texts, encoder)
  return np.asarray(emb, np.float32), np.asarray(tags, np.int32)


def _probs_fn(config, params, tag_names: Sequence[str], cache_dir, encoder: str | None,
              text_encoder=None) -> Callable[[Sequence[str]], np.ndarray]:
  """``texts -> float32[n, T, 3]``: one group of parsers' mean stance probabilities, on the
  token states of its encoder (``encoder``: from the cache; ``text_encoder``: live)."""
  model = build_parser(config, len(tag_names))
  forms, form_tag = (jnp.asarray(a) for a in known_forms(config.dpr.domain, tag_names,
                                                           cache_dir, encoder))
  # Each member's forms through its similarity adapter, once (not per request).
  member_forms = jax.jit(jax.vmap(lambda p: adapted_forms(model, p, forms)))(params)
  probs_fn = jax.jit(lambda p, f, t, m, c, cc: ensemble_probs(model, p, t, m, c, forms, form_tag,
                                                               f, clause_cue=cc))
  max_tokens, by_sentence = config.parser.max_tokens, bool(config.parser.sentence_states)
  by_clause = bool(config.parser.clause_cue)

  def probs(texts: Sequence[str]) -> np.ndarray:
    if text_encoder is not None:
      tokens, mask = text_encoder.token_states(list(texts), max_tokens,
                                               by_sentence=by_sentence)
      inputs = {"tokens": tokens, "mask": mask,
                "cue": np.array([negation_cue(t) for t in texts], np.float32)}
      if by_clause:
        inputs["clause_cue"] = clause_cue_inputs(texts, text_encoder.tokenizer, max_tokens)
    else:
      inputs = token_inputs(list(texts), cache_dir, encoder, max_tokens, by_sentence,
                            clause_cue=by_clause)
    return np.concatenate([
        np.asarray(probs_fn(params, member_forms,
                            *(inputs[k][s:s + 256] for k in ("tokens", "mask", "cue")),
                            inputs["clause_cue"][s:s + 256] if by_clause else None))
        for s in range(0, len(texts), 256)])

  return probs


def make_parse(config, params, tag_names: Sequence[str], cache_dir,
               encoder: str | None = None, text_encoder=None, mix_params=None,
               mix_text_encoder=None):
  """``texts -> [Parse]``: the stance probabilities of the ensemble's members, averaged.

  ``params``: the members' parameters stacked on a leading axis (leaves ``[K, ...]``,
  dpr_jax.checkpoint.parser_params / dpr_jax.train.parser.train_parser). Token states come
  from the cache (``cache_dir``) or, with ``text_encoder`` (serving), straight from the encoder.
  ``mix_params`` (dpr_jax.checkpoint.mix_parser_params): the second encoder's parsers
  (``parser.mix_encoder``; ``mix_text_encoder`` to read it live); the answer is then
  ``(1 - w) x`` the first group's mean ``+ w x`` theirs, ``w = parser.mix_weight``.
  """
  groups = [(1.0, _probs_fn(config, params, tag_names, cache_dir, encoder, text_encoder))]
  if mix_params is not None:
    w = float(config.parser.mix_weight)
    groups = [(1.0 - w, groups[0][1]),
              (w, _probs_fn(config, mix_params, tag_names, cache_dir,
                            config.parser.mix_encoder, mix_text_encoder))]

  def parse(texts: Sequence[str]) -> list[Parse]:
    if not len(texts):
      return []
    texts = [spell_out(t) for t in texts]  # "🚫 westerns" -> "no westerns" (else unchanged)
    return decode(sum(w * probs(texts) for w, probs in groups), tag_names,
                  float(config.parser.unsure_at))

  return parse
