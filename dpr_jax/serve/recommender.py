"""A trained run, ready to answer requests: history (+ prompt) -> top-k items.

``Recommender.load(run_dir)`` restores what ``python -m dpr_jax.launch`` trained: the config the
run saved (``config.json``), the cached dataset (titles, tags, users' histories), stage 1's best
backbone and stage 3's latest steering head. A request is

* a history: a known user's whole sequence (``user``), or items given by id or title (a cold user
  the model has never seen -- the backbone only needs the sequence);
* an optional prompt, read into its positive and negative part by the run's reader
  (``config.dpr.reader``, dpr_jax.prompts.reader): the learned request parser (each tag's stance,
  want / avoid / none; the answer shows the parse, "want Comedy 0.97; avoid Romance 0.91") or
  the rules (dpr_jax.prompts.combine). Both parts steer the user vector together
  (dpr_jax.models.dpr.compose); a prompt in which the parser recognises no tag leaves the
  unprompted list unchanged, and the answer says so, as does a prompt in another language
  (dpr_jax.prompts.language: the encoder and the parser read English). With the parser, a
  title named after "like" ("something like die hard", dpr_jax.serve.titles) is read as that
  item: the list is ranked as if it had just been watched (the item appended to the history),
  and the rest of the prompt is read as usual; a request that is one genre alone ("horror") is
  read as wanting it (dpr_jax.serve.one_genre); an era ("80s action movies", "before 1970",
  dpr_jax.serve.years) keeps the list to items released in those years; what the catalogue
  does not record ("a highly rated comedy", "r-rated", dpr_jax.serve.ratings) is not used, and
  the answer says so. Before the parsers read the rest, idioms that only intensify
  (dpr_jax.serve.idioms) and words saying the kids are away or asleep
  (dpr_jax.serve.kids_away) go, and phrasings they misread are said in the generator's
  training forms: a wish said with "keep" (dpr_jax.serve.keep), one genre asked in place of
  another (dpr_jax.serve.instead: "X but no Y"), a wish said by denying an aversion
  (dpr_jax.serve.litotes: "i want"), an avoid said as a break (dpr_jax.serve.breaks: "no X");
  where the parsers' reading wants nothing and the request avoids first, then wishes, it is
  read again said wish first (dpr_jax.serve.avoid_first);
* ``k``.

Ranking is one product of the (steered) user vector with the whole item table on device; the
items of the history are masked. Every answer also carries the unprompted list, so callers can
show what the prompt changed (``explain``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import config as config_lib
from dpr_jax import checkpoint, sharding
from dpr_jax.data.prepare import prepare
from dpr_jax.data.split import SplitData
from dpr_jax.errors import UserError
from dpr_jax.eval.baselines import popularity_counts
from dpr_jax.eval.ranking import length_buckets
from dpr_jax.models import build_head, retrieval, valid_item_mask
from dpr_jax.models.dpr import compose, negative_part, positive_part, scale_offset, tag_profile
from dpr_jax.models.parser import Parse
from dpr_jax.prompts import language
from dpr_jax.prompts.combine import split_request
from dpr_jax.prompts.features import clause_spans, negation_cue, prompt_features
from dpr_jax.serve import (avoid_first, breaks, idioms, instead, keep, kids_away, litotes,
                           ratings)
from dpr_jax.serve.one_genre import genre_forms, genre_words, reading_genres_alone
from dpr_jax.serve.titles import TitleFinder, casefold_name, title_names
from dpr_jax.serve.typos import Speller
from dpr_jax.serve.years import AVOID_OVER, find_era, item_years

MAX_K = 100
# Before the parsers read a request (after its title), in order: words saying the kids are away
# or asleep go ("the kids are in bed, a thriller": "a thriller"), and phrasings the parsers
# misread are said in the generator's training forms -- a wish said with "keep" ("keep the
# westerns coming": "want the westerns coming"), one genre in place of another ("westerns
# instead of musicals": "westerns but no musicals"), a wish said by denying an aversion ("i'm
# not against a western": "i want a western"), an avoid said as a break ("give westerns a
# rest": "no westerns"). Each is text -> text and leaves other text as typed.
_PLAIN = (kids_away.without, keep.as_wish, instead.in_place, litotes.as_wish, breaks.as_avoid)
NOTHING_RECOGNISED = ("no genre or category of this catalogue was recognised in the request: this"
                      " is the unprompted list")


class RequestError(UserError):
  """A request the model cannot answer as asked (unknown user or item, bad k, empty prompt)."""


@dataclasses.dataclass(frozen=True)
class Request:
  """One recommendation request; exactly one of ``user`` and ``history`` is set."""

  user: str | None = None  # a user id of the dataset
  history: tuple[str, ...] = ()  # item ids or titles, oldest first (a cold user)
  prompt: str = ""  # "" = no prompt
  k: int = 10

  @classmethod
  def from_json(cls, obj: Any, where: str = "request") -> Request:
    """Parses ``{"user": ..} | {"history": [..]}`` plus optional ``prompt`` and ``k``."""
    if not isinstance(obj, dict):
      raise RequestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - {"user", "history", "prompt", "k", "id"}
    if unknown:
      raise RequestError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}"
                         " (expected user or history, prompt, k, id)")
    history = obj.get("history") or ()
    if isinstance(history, (str, int)) or not all(isinstance(h, (str, int)) for h in history):
      raise RequestError(f"{where}: history must be a list of item ids or titles")
    k = obj.get("k", 10)
    if not isinstance(k, int) or isinstance(k, bool):
      raise RequestError(f"{where}: k must be an integer, got {k!r}")
    prompt = obj.get("prompt")  # absent or null: no prompt, the unprompted list
    if prompt is None:
      prompt = ""
    elif not isinstance(prompt, str):
      raise RequestError(f"{where}: prompt must be a string")
    elif not prompt.strip():  # as --prompt "": a typed request that says nothing is a mistake
      raise RequestError(f"{where}: the prompt is empty; leave it out (or null) for the"
                         " unprompted list")
    user = obj.get("user")
    return cls(user=None if user is None else str(user), history=tuple(str(h) for h in history),
               prompt=prompt, k=k)


def _bucket(n: int) -> int:
  """Batch sizes are padded to powers of two so few shapes get compiled."""
  return 1 << max(0, (n - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class _Reading:
  """One prompt as read: the parts' head features (None: no such part), their description,
  the parser's parse (None with the rules), notes for the person who asked, the items the
  titles in it named (``titles``, in the order typed; dpr_jax.serve.titles) and the release
  years it keeps the list to (``era``: first, last, inclusive; dpr_jax.serve.years), or away
  from (``era_avoided``)."""

  positive: np.ndarray | None
  negative: np.ndarray | None
  parts: dict
  parse: Any = None
  notes: tuple[str, ...] = ()
  titles: tuple[int, ...] = ()
  era: tuple[int, int] | None = None
  era_avoided: bool = False

  @classmethod
  def nothing(cls, notes: tuple[str, ...] = ()) -> _Reading:
    """A reading with no part and an empty parse: the unprompted list."""
    return cls(None, None, {"positive": "", "negative": ""}, Parse((), ()), notes)


class Recommender:
  """Restored stage checkpoints + dataset side information, answering :class:`Request` s."""

  def __init__(self, config, data: SplitData, model, backbone_params, head, head_params,
               encoder, parser_read=None):
    """``parser_read`` (dpr_jax.prompts.reader.parser_reader's) reads prompts when
    ``config.dpr.reader`` is "parser"."""
    if config.dpr.reader == "parser" and parser_read is None:
      raise ValueError("config.dpr.reader='parser' needs the parser's reader (Recommender.load)")
    self._parser_read = parser_read
    self.config = config
    self.encoder = encoder  # the frozen text encoder of training (dpr_jax.prompts.encoder)
    self.data = data
    self._model = model
    self._backbone = backbone_params
    self._head = head
    self._head_params = head_params
    self._prompt_cache: dict[str, np.ndarray] = {}
    self._read_cache: dict[str, _Reading] = {}
    self._items = ItemIndex(data.item_ids, data.item_titles)
    self._titles = TitleFinder(data.item_titles, popularity_counts(data),
                               genre_words(config.dpr.domain, data.tag_names))
    # "horor", "no romace": mistyped genre words, read as the word meant by the parser's
    # reading; words the encoder knows and the titles' stay as typed (no word is read without
    # the encoder's vocabulary).
    tokenizer = getattr(encoder, "tokenizer", None)
    vocabulary = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    self._speller = (Speller.build(config.dpr.domain, data.tag_names, vocabulary, data.item_titles)
                     if vocabulary and config.dpr.reader == "parser" else None)
    self._users = {u: i for i, u in enumerate(data.user_ids)}
    vocab = int(model.apply({"params": backbone_params}, method=model.item_table).shape[0])
    tags = np.zeros((vocab, data.item_tags.shape[1]), np.float32)
    tags[:len(data.item_tags)] = data.item_tags
    self._item_tags = jnp.asarray(tags)  # float32[V, T]
    years = np.zeros((vocab,), np.int32)  # 0: no known year (padding rows too)
    years[1:len(data.item_titles) + 1] = item_years(data.item_titles)
    self._item_years = jnp.asarray(years)  # int32[V]
    known = years[years > 0]
    self._year_range = (int(known.min()), int(known.max())) if len(known) else None
    self._rank = jax.jit(self._rank_fn, static_argnames=("k",))

  # ------------------------------------------------------------------ loading
  @classmethod
  def load(cls, run_dir: str, config=None, encoder=None) -> Recommender:
    """Restores ``run_dir`` (its ``config.json`` unless ``config`` is given).

    ``encoder`` defaults to the one the config names (``config.dpr.text_encoder``).
    """
    config = config or config_lib.load_run_config(run_dir)
    if encoder is None:
      from dpr_jax.prompts.encoder import TextEncoder

      encoder = TextEncoder.from_pretrained(config.dpr.text_encoder or None)
    config.unlock()
    config.run.dir = str(run_dir)
    config.lock()
    data = prepare(config.data)
    mesh = sharding.make_mesh(1, 1, devices=jax.devices()[:1])
    model, backbone = checkpoint.load_backbone(config, data, mesh)
    head_params, tuned = checkpoint.head_params(config, data)
    if tuned is not None:  # stage 3 tuned the backbone: it serves every request
      backbone = tuned
    head = build_head(config, len(data.tag_names))
    parser_read = None
    if config.dpr.reader == "parser":
      from dpr_jax.data.prepare import default_cache_dir
      from dpr_jax.prompts.bank import build_bank
      from dpr_jax.prompts.encoder import TextEncoder
      from dpr_jax.prompts.reader import canonical_features, make_parse, parser_reader

      params = checkpoint.parser_params(config, data.tag_names)
      mix = checkpoint.mix_parser_params(config, data.tag_names)
      bank = build_bank(config.dpr.domain, data.tag_names,
                        config.data.cache_dir or default_cache_dir(),
                        config.dpr.text_encoder or None)
      parse = make_parse(config, params, data.tag_names,
                         config.data.cache_dir or default_cache_dir(),
                         config.dpr.text_encoder or None, text_encoder=encoder, mix_params=mix,
                         mix_text_encoder=None if mix is None else
                         TextEncoder.from_pretrained(config.parser.mix_encoder))
      # "horror", "Westerns!": one genre alone is a wish, whatever the parsers make of it.
      parse = reading_genres_alone(parse, genre_forms(config.dpr.domain, data.tag_names))
      parser_read = parser_reader(
          parse, canonical_features(bank, data.tag_names, config.dpr.canonical_want))
    logging.info("restored %s: %d users, %d items, %d tags", run_dir, data.num_users,
                 data.num_items, len(data.tag_names))
    return cls(config, data, model, backbone, head, head_params, encoder, parser_read)

  # ------------------------------------------------------------------ request parts
  def user_history(self, user: str) -> np.ndarray:
    """int[n]: a known user's whole sequence (training, validation and test items)."""
    if user not in self._users:
      sample = ", ".join(list(self._users)[:5])
      raise RequestError(f"unknown user {user!r} (the dataset has {len(self._users)} users,"
                         f" e.g. {sample})")
    u = self._users[user]
    d = self.data
    return np.concatenate([d.history[u, :d.history_len[u]], d.test_targets[u:u + 1]])

  def resolve_items(self, refs: Sequence[str]) -> np.ndarray:
    """int[n]: internal indices of items given by original id or title (:class:`ItemIndex`)."""
    return self._items.resolve(refs)

  def prompt_features(self, text: str) -> np.ndarray:
    """float32[D_t + 1]: what the head reads of one prompt part (cached per text)."""
    if text not in self._prompt_cache:
      emb = self.encoder.encode([text])
      self._prompt_cache[text] = prompt_features(emb, [text])[0]
    return self._prompt_cache[text]

  # ------------------------------------------------------------------ ranking
  def _rank_fn(self, backbone, head, item_tags, item_years, inputs, seen, pos, neg, has_pos,
               has_neg, first, last, away, *, k: int):
    """Top-k with and without the prompt.

    Args:
      backbone, head: the two models' params.
      item_tags: float32[V, T] multi-hot tags (padding rows zero).
      item_years: int32[V] release years (0: unknown).
      inputs: int32[B, L] left-padded histories.
      seen: int32[B, H] items to mask (0 = padding).
      pos, neg: float32[B, D_t + 1] prompt features of the positive / negative part.
      has_pos, has_neg: bool[B].
      first, last: int32[B] the release years each row keeps to (inclusive; 0 and a year past
        every item's for a row without an era).
      away: bool[B] the row keeps away from those years instead (items of unknown year stay).
    Returns:
      (steered (scores, items), unprompted (scores, items)), each float32/int32[B, k].
    """
    h = self._model.apply({"params": backbone}, inputs,
                          method=self._model.user_vector)  # [B, d]
    table = self._model.apply({"params": backbone}, method=self._model.item_table)  # [V, d]
    vocab = table.shape[0]
    profile = tag_profile(seen, item_tags)  # [B, T] (read by a head with dpr.user_profile)
    out_pos, out_neg = (self._head.apply({"params": head}, h, p, on, profile, negative)
                        for p, on, negative in ((pos, has_pos, jnp.zeros_like(has_pos)),
                                                (neg, has_neg, jnp.ones_like(has_neg))))
    user_neg, bias_neg = negative_part(h, out_neg.user, out_neg.tag_bias, has_neg,
                                       self.config.dpr.negative_steering)
    bias_pos = positive_part(out_pos.tag_bias, has_pos, self.config.dpr.positive_steering)
    user_pos, bias_pos = scale_offset(h, out_pos.user, bias_pos, has_pos,
                                        self.config.dpr.positive_scale)
    user, tag_bias = compose(h, [(user_pos, bias_pos), (user_neg, bias_neg)])
    plain = retrieval.scores(h, table)
    steered = retrieval.scores(user, table, tag_bias, item_tags)
    masked = jnp.zeros((inputs.shape[0], vocab), bool).at[
        jnp.arange(inputs.shape[0])[:, None], seen].set(True)
    in_era = (item_years[None, :] >= first[:, None]) & (item_years[None, :] <= last[:, None])
    in_era = jnp.where(away[:, None], ~in_era, in_era)
    ok = valid_item_mask(vocab, self.data.num_items)[None, :] & ~masked & in_era
    return retrieval.top_k(steered, ok, k), retrieval.top_k(plain, ok, k)

  def _resolve(self, r: Request):
    """(history int[n], Request parts or None) of one request; RequestError when it is bad."""
    if not 1 <= r.k <= MAX_K:
      raise RequestError(f"k must be between 1 and {MAX_K}, got {r.k}")
    if (r.user is None) == (not r.history):
      raise RequestError("give either a user id or a history of items, not both or neither")
    if r.prompt and not r.prompt.strip():
      raise RequestError("the prompt is empty (only whitespace); leave it out for the"
                         " unprompted list")
    hist = self.user_history(r.user) if r.user is not None else self.resolve_items(r.history)
    return hist, (self.read(r.prompt) if r.prompt.strip() else None)

  def read(self, prompt: str) -> _Reading:
    """How ``prompt`` is read (``config.dpr.reader``); encoder errors belong to the request."""
    prompt = " ".join(prompt.split())
    if self.config.dpr.reader != "parser":
      parts = split_request(prompt)
      return _Reading(self.prompt_features(parts.positive) if parts.positive else None,
                      self.prompt_features(parts.negative) if parts.negative else None,
                      {"positive": parts.positive, "negative": parts.negative})
    if prompt not in self._read_cache:
      lang = language.other_language(prompt)
      if lang:  # the encoder and the parser read English: the unprompted list
        reading = _Reading.nothing((f"the request looks written in {lang}; requests are read in"
                                    " English only, so this is the unprompted list",))
      else:
        # Mistyped genre words first ("no horor": "no horror") and intensifying idioms out
        # ("scare the hell out of me": "scare me"), then a title ("something like 2001 a space
        # odyssey" names no year); in the rest the phrasings of _PLAIN, what the catalogue
        # does not record, then an era; the parsers read what is left.
        text, fixes = self._speller.correct(prompt) if self._speller else (prompt, ())
        text = idioms.plain(text)
        match = self._titles.find(text)  # "something like die hard": that item
        rest = match.rest if match else text
        for plain in _PLAIN:
          rest = plain(rest)
        rest, unused = ratings.unrecorded(rest)  # "a highly rated comedy": "comedy", noted
        era = find_era(rest)  # "80s action movies"
        asked = era.rest if era else rest
        if match or era:
          reading = (self._read_text(asked, named=True) if any(c.isalpha() for c in asked)
                     else _Reading.nothing())
        elif unused and not any(c.isalpha() for c in asked):
          reading = _Reading.nothing((NOTHING_RECOGNISED,))
        else:
          reading = self._read_text(asked)
        if era:
          reading = self._with_era(reading, era, self._era_stance(rest, era, reading.parse))
        if unused:
          reading = dataclasses.replace(reading, notes=unused + reading.notes)
        if match:
          read = "; ".join(f"{t!r} as the title {self.item(i)['title']}"
                           for t, i in zip(match.typed, match.items))
          reading = dataclasses.replace(reading, titles=match.items, notes=(
              f"read {read}: the list is ranked as if you had just watched"
              f" {'it' if len(match.items) == 1 else 'them'}",) + reading.notes)
        if fixes:
          read = ", ".join(f"{typed!r} as {meant!r}" for typed, meant in fixes)
          reading = dataclasses.replace(reading, notes=(f"read {read} (a typo?)",)
                                        + reading.notes)
      self._read_cache[prompt] = reading
    return self._read_cache[prompt]

  def _era_stance(self, text: str, era, rest: Parse) -> str:
    """Whether ``text`` wants ``era``'s years ("want"), avoids them ("avoid") or avoids a genre
    the era only describes ("avoid a tag": "no 1940s detective pictures"); "unsure" where the
    era's clause both wants and avoids.

    Read from the era's clause (dpr_jax.prompts.features.clause_spans, cut again at commas)
    without the era's words, by the parsers and the negation cue: a clause with no cue keeps to
    the years unless the parsers read it as avoiding a genre ("80s action movies", "something
    from the 90s"; "1940s detective pictures are a hard pass" describes what it avoids); a
    clause with a cue and no genre avoids the years ("nothing from the 90s", "anything but 80s
    stuff", "i'm so over the 80s": years.AVOID_OVER), one that wants a genre keeps to them
    ("nothing but 80s action"). ``rest``: the parse of ``era.rest``, the clause's own where the
    era's clause is the whole request (not read twice).
    """
    a, b = next(((s, e) for s, e in clause_spans(text) if s <= era.span[0] < e),
                (0, len(text)))
    cuts = [a] + [a + m.end() for m in re.finditer(r",", text[a:b])] + [b + 1]
    a, b = next((s, min(e - 1, b)) for s, e in zip(cuts, cuts[1:]) if s <= era.span[0] < e)
    clause = " ".join(f"{text[a:era.span[0]]} {text[era.span[1]:b]}".split())
    own = rest if clause == era.rest else self._parser_read([clause or "."]).parses[0]
    if own.want and own.avoid:
      return "unsure"
    if own.avoid:
      return "avoid a tag"
    if not own.want and (negation_cue(text[a:b]) or AVOID_OVER.search(text[a:b])):
      return "avoid"
    return "want"

  def _with_era(self, reading: _Reading, era, stance: str) -> _Reading:
    """``reading`` keeping the list to ``era``'s years (dpr_jax.serve.years.Era), clipped to the
    catalogue's, or away from them (``stance``, :meth:`_era_stance`); a note says so, or why
    the era was not used."""
    def noted(note, **kw):
      return dataclasses.replace(reading, notes=(note,) + reading.notes, **kw)

    if self._year_range is None:
      return noted(f"this catalogue has no release years, so {era.typed!r} was not used")
    lo, hi = self._year_range
    first, last = max(era.first or lo, lo), min(era.last or hi, hi)
    if first > last:
      return noted(f"no item of this catalogue was released in the years asked ({era.typed!r};"
                   f" it has {lo} to {hi}), so they were not used")
    years = f"{first}" if first == last else f"{first} to {last}"
    if stance == "want":
      return noted(f"read {era.typed!r} as the years {years}: the list keeps to items released"
                   " then", era=(first, last))
    if stance == "avoid":
      return noted(f"read {era.typed!r} as the years {years}, to avoid: the list leaves out"
                   " items released then", era=(first, last), era_avoided=True)
    if stance == "avoid a tag":
      return noted(f"read {era.typed!r} as describing what you want to avoid, so the list is not"
                   f" kept to or away from the years {years}")
    return noted(f"unsure whether you want or avoid the years {years} ({era.typed!r}), so they"
                 " were not used: say it in a clause of its own, e.g. \"..., from the 80s\" or"
                 " \"..., nothing from the 80s\"")

  def _read_text(self, text: str, named: bool = False) -> _Reading:
    """``text`` read by the parsers (:meth:`_parse_one`); where that reading wants nothing and
    the request avoids first, then wishes ("no fantasy stuff, a western would hit the spot"),
    it is read again said wish first (dpr_jax.serve.avoid_first), and that reading is used if it
    wants something: the parsers let a leading negation reach the clauses after it."""
    reading = self._parse_one(text, named)
    if not reading.parse.want:
      again = avoid_first.wish_first(text)
      if again != text:
        other = self._parse_one(again, named)
        if other.parse.want:
          return other
    return reading

  def _parse_one(self, prompt: str, named: bool = False) -> _Reading:
    """``prompt`` (English) read by the parsers, with notes on what was cut, not recognised or
    unsure (``named``: the rest of a request that named a title or an era, which is what it
    asked)."""
    with warnings.catch_warnings():  # the answer's note below says it, in the person's terms
      warnings.filterwarnings("ignore", message=r".*longer than the text encoder",
                              category=UserWarning)
      r = self._parser_read([prompt])
    parse = r.parses[0]
    notes = []
    ids, _ = self.encoder.tokenize([prompt])
    if len(ids[0]) > self.config.parser.max_tokens:
      notes.append(f"only the first {self.config.parser.max_tokens - 2} word pieces of the"
                   " request were read")
    if parse.empty and not named:
      notes.append(NOTHING_RECOGNISED)
    read = {t: "want" for t, _ in parse.want} | {t: "avoid" for t, _ in parse.avoid}
    for tag, p in parse.unsure:  # the parsers disagree on its polarity: never silently
      opposite = "avoid" if read[tag] == "want" else "want"
      notes.append(f"unsure whether you want or avoid {tag} (read as {read[tag]}; {opposite}"
                   f" {p:.2f}): if the list goes the wrong way, say it plainly, e.g."
                   f" \"more {tag}\" or \"no {tag}\"")
    return _Reading(
        r.features[r.positive[0]] if r.positive[0] >= 0 else None,
        r.features[r.negative[0]] if r.negative[0] >= 0 else None,
        {"positive": ", ".join(t for t, _ in parse.want),
         "negative": ", ".join(t for t, _ in parse.avoid)}, parse, tuple(notes))

  def recommend_many(self, requests: Sequence[Request], errors: str = "raise") -> list:
    """Answers a batch of requests with one device call (see :meth:`_answer` for the format).

    With ``errors="return"`` a bad request gets its :class:`RequestError` in its place and the
    others are still answered; with ``"raise"`` the first bad request raises.
    """
    resolved: list = []
    for r in requests:
      try:
        resolved.append(self._resolve(r))
      except UserError as e:
        if errors == "raise":
          raise
        resolved.append(e if isinstance(e, RequestError) else RequestError(str(e)))
    good = [i for i, x in enumerate(resolved) if not isinstance(x, Exception)]
    out: list = list(resolved)
    if not good:
      return out
    # One row per request, ranked with its history and prompt; a request that named titles
    # ranks with those items appended to the history, one that named an era among the items of
    # those years, and either gets a second row, its history as given, no prompt and every
    # year, for the unprompted list it is compared with.
    rows, at = [], {}  # at[i]: (the row of request i, the row of its unprompted list)
    for i in good:
      hist, reading = resolved[i]
      if reading is not None and (reading.titles or reading.era):
        at[i] = (len(rows), len(rows) + 1)
        rows += [(np.append(hist, reading.titles).astype(hist.dtype), reading), (hist, None)]
      else:
        at[i] = (len(rows), len(rows))
        rows.append((hist, reading))
    k = min(max(requests[i].k for i in good), self.data.num_items)
    b, dim = _bucket(len(rows)), self.encoder.dim + 1
    longest = max(len(h) for h, _ in rows)
    # Inputs as wide as the longest history needs, on the evaluator's few static widths: the
    # columns cut are pure left padding, which the backbones ignore, so the answer is the same
    # and short histories cost less (the GRU runs one step per column).
    length = next(w for w in length_buckets(self.data.max_len)
                  if w >= min(longest, self.data.max_len))
    inputs = np.zeros((b, length), np.int32)
    seen = np.zeros((b, max(64, _bucket(longest))), np.int32)
    pos, neg = np.zeros((b, dim), np.float32), np.zeros((b, dim), np.float32)
    has_pos, has_neg = np.zeros(b, bool), np.zeros(b, bool)
    first, last = np.zeros(b, np.int32), np.full(b, np.iinfo(np.int32).max, np.int32)
    away = np.zeros(b, bool)
    for row, (hist, reading) in enumerate(rows):
      tail = hist[-self.data.max_len:]  # at most `length` items (see above)
      inputs[row, length - len(tail):] = tail
      seen[row, :len(hist)] = hist
      if reading is not None and reading.positive is not None:
        pos[row], has_pos[row] = reading.positive, True
      if reading is not None and reading.negative is not None:
        neg[row], has_neg[row] = reading.negative, True
      if reading is not None and reading.era:
        (first[row], last[row]), away[row] = reading.era, reading.era_avoided
    (s_scores, s_items), (_, p_items) = jax.device_get(self._rank(
        self._backbone, self._head_params, self._item_tags, self._item_years, inputs, seen, pos,
        neg, has_pos, has_neg, first, last, away, k=k))
    for i, (row, plain) in at.items():
      kk = requests[i].k
      out[i] = self._answer(requests[i], resolved[i][1], resolved[i][0], s_items[row][:kk],
                            s_scores[row][:kk], p_items[plain][:kk])
    return out

  def recommend(self, request: Request) -> dict:
    """One request -> its answer (see :meth:`_answer`)."""
    return self.recommend_many([request])[0]

  # ------------------------------------------------------------------ answers
  def item(self, i: int, score: float | None = None) -> dict:
    d = self.data
    item_id = str(d.item_ids[i - 1])
    out = {"item": item_id, "title": d.item_titles[i - 1] or f"item {item_id}",
           "tags": [t for t, on in zip(d.tag_names, d.item_tags[i]) if on]}
    if score is not None:
      out["score"] = round(float(score), 4)
    return out

  def _tag_shares(self, items: np.ndarray) -> dict[str, float]:
    if not len(items):
      return {}
    counts = self.data.item_tags[items].sum(0)
    return {t: round(float(c) / len(items), 2) for t, c in zip(self.data.tag_names, counts) if c}

  def _answer(self, request: Request, reading: _Reading | None, history: np.ndarray, items,
              scores, plain) -> dict:
    """``{"items": [{rank, item, title, tags, score}], "prompt_parts": {...}, "explain": {...}}``,
    with the parser also ``read_as`` ("want Comedy 0.97; avoid Romance 0.91"), ``parse`` (each
    recognised tag's stance probability, and ``unsure``: the other polarity's where the parsers
    disagree, ``parser.unsure_at``) and ``notes`` (what was not understood or is unsure).

    ``explain`` compares the list with the unprompted one: items that entered and left, and each
    tag's share of the top-k before and after.
    """
    # An era can leave fewer than k items: the masked ones that filled the list are dropped.
    keep = [r for r, s in enumerate(scores) if s > retrieval.NEG / 2]
    items, scores = [int(items[r]) for r in keep], [scores[r] for r in keep]
    plain = [int(i) for i in plain]
    answer = {
        "items": [dict(rank=r + 1, **self.item(i, s))
                  for r, (i, s) in enumerate(zip(items, scores))],
        "history_length": len(history),
        "prompt": request.prompt,
        "prompt_parts": (dict(reading.parts) if reading is not None
                         else {"positive": "", "negative": ""}),
    }
    if reading is not None and reading.parse is not None:
      answer |= {"read_as": reading.parse.describe(), "parse": reading.parse.to_dict(),
                 "notes": list(reading.notes)}
    named = []  # what the request named besides genres, before the parse in read_as
    if reading is not None and reading.titles:  # the titles the request named
      answer["titles"] = [self.item(i) for i in reading.titles]
      named.append("like " + " / ".join(t["title"] for t in answer["titles"]))
    if reading is not None and reading.era:  # the years the list keeps to
      answer["era"] = {"from": reading.era[0], "to": reading.era[1],
                       "avoid": reading.era_avoided}
      years = (f"{reading.era[0]}" if reading.era[0] == reading.era[1]
               else f"{reading.era[0]} to {reading.era[1]}")
      named.append(f"not from {years}" if reading.era_avoided else f"from {years}")
    if named:
      answer["read_as"] = "; ".join(named + ([] if reading.parse.empty else [answer["read_as"]]))
    old_rank = {i: r + 1 for r, i in enumerate(plain)}
    answer["explain"] = {
        "unprompted": [self.item(i)["title"] for i in plain],
        "entered": [self.item(i)["title"] for i in items if i not in old_rank],
        "left": [self.item(i)["title"] for i in plain if i not in set(items)],
        "moved": {self.item(i)["title"]: [old_rank[i], r + 1] for r, i in enumerate(items)
                  if i in old_rank and old_rank[i] != r + 1},
        "tag_share_before": self._tag_shares(np.asarray(plain)),
        "tag_share_after": self._tag_shares(np.asarray(items)),
    }
    if request.user is not None:
      answer["user"] = request.user
    return answer


class ItemIndex:
  """Items by original id or title, as people name them.

  Ids match exactly; titles case-insensitively, also without their year and with a trailing
  article in front ("Toy Story", "The Matrix" for "Matrix, The (1999)") when one item has that
  name; else a unique substring of a title matches. Anything else is a RequestError.
  """

  def __init__(self, item_ids: Sequence[str], titles: Sequence[str]):
    self._titles = list(titles)
    self._by_id = {item_id: i for i, item_id in enumerate(item_ids, start=1)}
    self._by_title: dict[str, int] = {}
    self._by_name: dict[str, list[int]] = {}  # without the year / with the article in front
    for i, title in enumerate(titles, start=1):
      if title:
        self._by_title.setdefault(title.casefold(), i)
        for name in title_names(title):
          self._by_name.setdefault(name, []).append(i)

  def resolve(self, refs: Sequence[str]) -> np.ndarray:
    """int[n]: internal indices (1-based) of the items ``refs`` name (class docstring)."""
    out = []
    for ref in refs:
      ref = str(ref).strip()
      if ref in self._by_id:
        out.append(self._by_id[ref])
        continue
      key = ref.casefold()
      if key in self._by_title:
        out.append(self._by_title[key])
        continue
      named = self._by_name.get(casefold_name(ref), [])
      if len(named) == 1:
        out.append(named[0])
        continue
      hits = named or [i for t, i in self._by_title.items() if key and key in t]
      if len(hits) == 1:
        out.append(hits[0])
        continue
      if hits:
        names = "; ".join(self._titles[i - 1] for i in hits[:5])
        raise RequestError(f"item {ref!r} is ambiguous ({len(hits)} titles match: {names}"
                           f"{'; ...' if len(hits) > 5 else ''})")
      raise RequestError(f"unknown item {ref!r}: neither an item id nor a title of the dataset")
    return np.asarray(out, np.int32)

