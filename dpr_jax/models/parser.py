"""The request parser: for every tag of the domain, does the request want it, avoid it, or not
mention it?

Why a parser, and why on token states (ours; the paper's full text is not available): the pooled
sentence embedding of all-MiniLM-L6-v2 hardly encodes negation ("no horror" sits next to
"horror"), and which tag a "not" applies to ("a comedy that isn't a love story") is a matter of
token order. The parser reads the frozen encoder's last-layer token states:

  m   = span_matches(tokens, known surface forms)     # [B, S, T]: where each tag is named,
                                                      # by the frozen encoder's similarity
  x   = Dense(H)(tokens) + position embedding           # [B, S, H]
  x   = one pre-LN Transformer block over the tokens    # the scope of "not", "but", "sick of"
  p_t = attention of a learned query q_t over x, biased by m[:, :, t]   # [B, T, H]
  z_t = MLP([p_t, mean(x), max_s m[:, s, t], its margin, cue])   # cue: the lexical negation cue
        (+ sum_s a[t, s] c[s] with clause_cue: the cue of the clause where tag t is attended)
  logits[b, t] = Dense(3)(z_t)                          # [B, T, 3]: none / want / avoid

The known surface forms are the generator's *training* forms and the tag names
(dpr_jax.prompts.generator); the similarity lets a form the parser never saw in training reach
its tag, the contextual state at the attended position decides the stance.

Every tag is classified on its own, so a request can want one tag and avoid another (a combined
request is its set of stances) or mention nothing (a vague request: every tag "none"). The
stance probabilities are the answer's "how the request was read" (``want Comedy 0.97``).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dpr_jax.models.layers import partitioned

Array = jax.Array

STANCES = ("none", "want", "avoid")
NONE, WANT, AVOID = 0, 1, 2


def _unit(x: Array) -> Array:
  """Rows scaled to unit length; zero rows stay zero with a finite gradient (a plain
  ``max(norm, eps)`` has a NaN gradient at zero, which a mask does not stop)."""
  return x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), 1e-12))


def tag_groups(form_tag, num_tags: int) -> tuple[np.ndarray, np.ndarray]:
  """The known forms grouped by tag, for a max over each tag's forms as a dense reduction (a
  ``segment_max`` is a scatter, slow on CPUs and its gradient a gather).

  ``form_tag``: int[M], concrete (the static table of the known forms, closed over by the
  callers' jitted functions). Returns (int32[T, F] the forms' indices, each tag's padded to the
  largest group F with form 0; bool[T, F] which entries are real forms)."""
  try:
    tags = np.asarray(form_tag)
  except jax.errors.TracerArrayConversionError:
    raise TypeError("span_matches: form_tag must be a concrete array (the known forms' tags "
                    "are static; close over them instead of passing them as a traced "
                    "argument)") from None
  groups = [np.flatnonzero(tags == t) for t in range(num_tags)]
  width = max([1] + [len(g) for g in groups])
  index = np.zeros((num_tags, width), np.int32)
  real = np.zeros((num_tags, width), bool)
  for t, g in enumerate(groups):
    index[t, :len(g)], real[t, :len(g)] = g, True
  return index, real


def span_matches(tokens: Array, mask: Array, forms: Array, form_tag: Array, num_tags: int,
                 max_span: int = 4, exclude: Array | None = None) -> Array:
  """How much each token position starts a phrase like one of a tag's known surface forms.

  ``match[b, s, t] = max over spans tokens[s:s+w] (w <= max_span, real tokens only) and forms f
  of tag t of cos(mean of the span's token states, embedding of f)``: the frozen encoder's own
  similarity, so a form never seen in training ("star-crossed lovers") still lands near the
  known ones ("love story"). -1 where nothing can start.

  Computed with one token-form product: ``cos(mean span, f) = (sum_i x_i . f) / |sum_i x_i|``,
  so a span of width w is the span of width w - 1 starting at the same token plus one shifted
  row of ``x_i . f`` (float32[B, S, T*F]) and of the states; the max over a tag's forms is a
  dense reduction over :func:`tag_groups`.

  Args:
    tokens: float[B, S, D] token states; mask: bool[B, S]; forms: float[M, D] unit embeddings of
    the known forms; form_tag: int[M] the tag of each form (concrete, :func:`tag_groups`);
    exclude: bool[B, M] or None, forms left out per request (training: the forms the request
    itself contains, so that the parser learns to find a tag from *other* forms' similarity, as
    it must for unseen ones).
  Returns:
    float32[B, S, T].
  """
  index, real = tag_groups(form_tag, num_tags)  # int32[T, F], bool[T, F]
  b, s = tokens.shape[:2]
  x = jnp.where(mask[..., None], tokens.astype(jnp.float32), 0.0)  # [B, S, D]
  m = mask.astype(jnp.float32)  # [B, S]
  grouped = forms.astype(jnp.float32)[index.reshape(-1)]  # [T*F, D]
  dots = jnp.einsum("bsd,md->bsm", x, grouped)  # [B, S, T*F]
  usable = jnp.asarray(real)[None, None]  # [1, 1, T, F]: a tag without forms gets -1
  if exclude is not None:
    usable = usable & ~exclude[:, index][:, None]  # [B, 1, T, F]

  def shifted(a, by):  # a[:, s + by] at s, zeros past the end
    if by >= s:
      return jnp.zeros_like(a)
    return jnp.pad(a[:, by:], ((0, 0), (0, by)) + ((0, 0),) * (a.ndim - 2))

  span_dots, span_sum, count = jnp.zeros_like(dots), jnp.zeros_like(x), jnp.zeros_like(m)
  best = jnp.full((b, s, num_tags), -1.0, jnp.float32)
  for w in range(1, max_span + 1):  # the spans tokens[s : s + w]
    span_dots += shifted(dots, w - 1)
    span_sum += shifted(x, w - 1)
    count += shifted(m, w - 1)
    norm = jnp.sqrt(jnp.maximum(jnp.sum(span_sum * span_sum, -1), w * w * 1e-12))  # [B, S]
    cos = (span_dots / norm[..., None]).reshape(b, s, *index.shape)  # [B, S, T, F]
    by_tag = jnp.max(jnp.where(usable, cos, -1.0), -1)  # [B, S, T]
    best = jnp.maximum(best, jnp.where((count == w)[..., None], by_tag, -1.0))  # all real
  return best


class SimilarityAdapter(nn.Module):
  """A learned residual map on the encoder's states before span matching: ``x + (x U) V``,
  rank ``rank``, V zero-initialised, so training starts from the frozen encoder's own
  similarity. Trained through the parser's loss with form dropout (a request's own forms hidden
  from the matching), it learns to bring a form near the *other* forms of its tag and to push
  construction words ("stuff", "tonight") away from every tag -- what an unseen form needs.

  float[..., D] -> float32[..., D].
  """

  rank: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    d = x.shape[-1]
    down = self.param("down", partitioned(nn.initializers.lecun_normal(), ("text", None)),
                      (d, self.rank), jnp.float32)
    up = self.param("up", partitioned(nn.initializers.zeros, (None, "text")), (self.rank, d),
                    jnp.float32)
    x = x.astype(jnp.float32)
    return x + (x @ down) @ up


class RequestParser(nn.Module):
  """Token states -> per-tag stance logits.

  Attributes:
    num_tags: T.
    hidden: H, the parser's width.
    num_heads: heads of the self-attention.
    max_tokens: S, the longest token sequence (position embeddings).
    dropout: dropout rate in training.
    similarity_rank: rank of the :class:`SimilarityAdapter` applied to the token states and the
      forms before :func:`span_matches` (0: the frozen encoder's similarity).
    input_norm: a learned LayerNorm on the token states before the token projection, so that
      encoders whose states differ in scale (MPNet's per-dimension std is about a quarter of
      MiniLM's) feed the parser alike; the span matching reads the raw states either way.
    slot_gate: a per-token mark "this token is part of a tag's name" (``Dense(1)`` on the
      contextual states x, logits sown as ``intermediates/slot_logits`` float32[B, S] for an
      auxiliary loss, :func:`slot_loss`) gates the span matches,
      ``m' = sigmoid(mark) * (m + 1) - 1``: a span the request's construction does not present
      as a tag's name ("stuff", "tonight") cannot name a tag, however close its words are. The
      spans then cover the request's words only ([CLS] / [SEP] excluded: left in, the [CLS]
      state's sentence-level similarity passes every gate).
  """

  num_tags: int
  hidden: int = 128
  num_heads: int = 4
  max_tokens: int = 32
  dropout: float = 0.1
  similarity_rank: int = 0
  input_norm: bool = False
  slot_gate: bool = False
  use_cue: bool = True  # False: the negation cue input is zero (config parser.negation_cue)
  # True: each tag also reads the negation cue of the clause(s) its attention lands on, the
  # per-token ``clause_cue`` weighted by the tag's attention (config parser.clause_cue).
  clause_cue: bool = False

  @nn.compact
  def __call__(self, tokens: Array, mask: Array, cue: Array, forms: Array, form_tag: Array,
               deterministic: bool = True, exclude: Array | None = None,
               forms_adapted: bool = False, clause_cue: Array | None = None) -> Array:
    """tokens float[B, S, D], mask bool[B, S], cue float[B], forms float[M, D] and form_tag
    int[M] (the known surface forms, :func:`span_matches`; ``exclude`` bool[B, M] leaves some
    out per request; ``forms_adapted``: ``forms`` are already this parser's
    :func:`adapted_forms`; ``clause_cue`` float[B, S], each token's clause's negation cue,
    dpr_jax.prompts.features.clause_cues, read with ``self.clause_cue``) -> logits
    float32[B, T, 3]."""
    init = nn.initializers.xavier_uniform()
    b, s, _ = tokens.shape
    cue = cue if self.use_cue else jnp.zeros_like(cue)
    if self.clause_cue and clause_cue is None:
      raise ValueError("RequestParser(clause_cue=True) needs the per-token clause_cue input")
    with jax.named_scope("parser_matches"):
      states = tokens
      if self.similarity_rank:
        adapt = SimilarityAdapter(self.similarity_rank, name="similarity")
        states = adapt(tokens)
        forms = forms if forms_adapted else _unit(adapt(forms))
      words = mask
      if self.slot_gate:  # the request's words only: no span starts at or covers [CLS] / [SEP]
        pos = jnp.arange(s)[None]
        words = mask & (pos > 0) & (pos < jnp.sum(mask, 1, keepdims=True) - 1)
      match = span_matches(states, words, forms, form_tag, self.num_tags,
                           exclude=exclude)  # [B, S, T]
    with jax.named_scope("parser_tokens"):
      x = tokens.astype(jnp.float32)  # [B, S, D]
      if self.input_norm:
        x = nn.LayerNorm(name="input_norm")(x)
      x = nn.Dense(self.hidden, kernel_init=partitioned(init, ("text", "mlp")))(x)  # [B, S, H]
      pos = self.param("position", partitioned(nn.initializers.normal(0.02), (None, "mlp")),
                       (self.max_tokens, self.hidden), jnp.float32)
      x = x + pos[None, :s]
      pair = mask[:, None, :, None] & mask[:, None, None, :]  # [B, 1, S, S]
      y = nn.LayerNorm()(x)
      y = nn.MultiHeadDotProductAttention(self.num_heads, dropout_rate=self.dropout,
                                          deterministic=deterministic)(y, y, mask=pair)
      x = x + y
      y = nn.LayerNorm()(x)
      y = nn.Dense(2 * self.hidden)(y)
      y = nn.Dense(self.hidden)(nn.gelu(y))
      x = x + nn.Dropout(self.dropout, deterministic=deterministic)(y)
      x = nn.LayerNorm()(x)  # [B, S, H]
    if self.slot_gate:
      with jax.named_scope("parser_slots"):
        mark = nn.Dense(1, name="slot")(x)[..., 0].astype(jnp.float32)  # [B, S]
        self.sow("intermediates", "slot_logits", mark)
        match = jax.nn.sigmoid(mark)[..., None] * (match + 1.0) - 1.0  # [B, S, T]
    with jax.named_scope("parser_tags"):
      # Each tag attends to where the request mentions it: a learned query plus a bias from
      # the span matches (sharpened by a learned temperature).
      queries = self.param("tag_queries", partitioned(nn.initializers.normal(0.02),
                                                      (None, "mlp")),
                           (self.num_tags, self.hidden), jnp.float32)  # [T, H]
      sharp = self.param("match_sharpness", nn.initializers.constant(10.0), (), jnp.float32)
      keys = nn.Dense(self.hidden)(x)  # [B, S, H]
      values = nn.Dense(self.hidden)(x)  # [B, S, H]
      logits = (jnp.einsum("th,bsh->bts", queries, keys) / jnp.sqrt(self.hidden)
                + sharp * jnp.swapaxes(match, 1, 2))  # [B, T, S]
      logits = jnp.where(mask[:, None, :], logits, -1e9)
      attn = jax.nn.softmax(logits, axis=-1)
      per_tag = jnp.einsum("bts,bsh->bth", attn, values)  # [B, T, H]
      m = mask[..., None].astype(jnp.float32)
      pooled = jnp.sum(x * m, 1) / jnp.maximum(jnp.sum(m, 1), 1.0)  # [B, H]
      top = jnp.max(match, axis=1)  # [B, T] the best match of each tag anywhere
      rival = jnp.max(jnp.where(jax.nn.one_hot(jnp.argmax(top, -1), self.num_tags) > 0, -1.0,
                                top), axis=-1, keepdims=True)  # [B, 1] best other tag
      z = jnp.concatenate([per_tag, jnp.broadcast_to(pooled[:, None], per_tag.shape),
                           top[..., None], (top - jnp.max(top, -1, keepdims=True))[..., None],
                           jnp.broadcast_to(rival[..., None], (b, self.num_tags, 1)),
                           jnp.broadcast_to(cue[:, None, None].astype(jnp.float32),
                                            (b, self.num_tags, 1))], axis=-1)
      if self.clause_cue:  # the cue where each tag is read: [B, T, 1]
        z = jnp.concatenate([z, jnp.einsum("bts,bs->bt", attn, clause_cue.astype(
            jnp.float32))[..., None]], axis=-1)
      z = nn.gelu(nn.Dense(self.hidden)(z))
      z = nn.Dropout(self.dropout, deterministic=deterministic)(z)
      return nn.Dense(len(STANCES))(z).astype(jnp.float32)  # [B, T, 3]


def adapted_forms(model: RequestParser, params, forms: Array) -> Array:
  """The known forms as one parser's span matching reads them: through its
  :class:`SimilarityAdapter`, unit rows (unchanged with ``similarity_rank`` 0). They depend on
  the parameters only, so a reader computes them once, not per request (for ten parsers they
  are about half the time of reading one request). float[M, D] -> float32[M, D]."""
  if not model.similarity_rank:
    return forms.astype(jnp.float32)
  adapter = SimilarityAdapter(model.similarity_rank)
  return _unit(adapter.apply({"params": params["similarity"]}, forms))


def ensemble_probs(model: RequestParser, params, tokens: Array, mask: Array, cue: Array,
                   forms: Array, form_tag: Array, member_forms: Array | None = None,
                   clause_cue: Array | None = None) -> Array:
  """Stance probabilities of an ensemble of parsers, averaged over its members.

  ``params``: the members' parameters stacked on a leading axis (leaves ``[K, ...]``);
  ``member_forms``: float32[K, M, D], each member's :func:`adapted_forms` (``jax.vmap`` of it
  over ``params``, computed once per set of parameters), or None to adapt ``forms`` in the
  call; the other arguments (``clause_cue`` float[B, S] or None) as
  :meth:`RequestParser.__call__`. Returns float32[B, T, 3].
  Averaging the probabilities (not the logits) keeps each member's confidence: a tag one member
  is sure of and the others doubt ends near the middle, and its stance is the average's argmax.
  """

  def member(p, f):  # float32[B, T, 3]
    return jax.nn.softmax(model.apply({"params": p}, tokens, mask, cue, f, form_tag,
                                      forms_adapted=member_forms is not None,
                                      clause_cue=clause_cue), -1)

  with jax.named_scope("parser_ensemble"):
    if member_forms is None:
      return jnp.mean(jax.vmap(member, in_axes=(0, None))(params, forms), axis=0)
    return jnp.mean(jax.vmap(member)(params, member_forms), axis=0)


def stance_loss(logits: Array, labels: Array, weight: Array | None = None) -> Array:
  """Mean cross-entropy over requests and tags, float32[].

  Args:
    logits: float[B, T, 3]; labels: int[B, T] in {0 none, 1 want, 2 avoid};
    weight: float[B] or None (0 for padding rows).
  """
  ce = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), labels[..., None], -1)[..., 0]
  per_request = jnp.sum(ce, axis=-1)  # [B]: every tag of the request
  if weight is None:
    return jnp.mean(per_request)
  return jnp.sum(per_request * weight) / jnp.maximum(jnp.sum(weight), 1.0)


@dataclasses.dataclass(frozen=True)
class Parse:
  """How one request was read: the tags it wants and avoids, with their probabilities.

  ``unsure``: (tag, probability of the other polarity) for each read tag whose other polarity
  got at least the reader's threshold (:func:`decode`, ``parser.unsure_at``) -- the ensemble's
  members disagree on whether it is wanted or avoided, so the answer says so.
  """

  want: tuple[tuple[str, float], ...]
  avoid: tuple[tuple[str, float], ...]
  unsure: tuple[tuple[str, float], ...] = ()

  @property
  def empty(self) -> bool:
    return not self.want and not self.avoid

  def describe(self) -> str:
    """'want Comedy 0.97; avoid Romance 0.91', 'avoid Thriller 0.75 (unsure: want 0.22)', or
    'nothing recognised'."""
    other = dict(self.unsure)

    def one(stance: str, tag: str, p: float, opposite: str) -> str:
      doubt = f" (unsure: {opposite} {other[tag]:.2f})" if tag in other else ""
      return f"{stance} {tag} {p:.2f}{doubt}"

    parts = [one("want", t, p, "avoid") for t, p in self.want] + [
        one("avoid", t, p, "want") for t, p in self.avoid]
    return "; ".join(parts) if parts else "nothing recognised"

  def to_dict(self) -> dict:
    return {"want": {t: round(p, 4) for t, p in self.want},
            "avoid": {t: round(p, 4) for t, p in self.avoid},
            "unsure": {t: round(p, 4) for t, p in self.unsure}}


def slot_loss(slot_logits: Array, targets: Array, mask: Array, known: Array) -> Array:
  """Mean binary cross-entropy of the per-token marks over the real tokens of the requests
  whose forms' positions are known, float32[].

  Args:
    slot_logits: float[B, S]; targets: bool[B, S] (token inside a tag's surface form);
    mask: bool[B, S] real tokens; known: bool[B] (False: no targets, e.g. a template request).
  """
  bce = optax.sigmoid_binary_cross_entropy(slot_logits.astype(jnp.float32),
                                          targets.astype(jnp.float32))
  w = (mask & known[:, None]).astype(jnp.float32)
  return jnp.sum(bce * w) / jnp.maximum(jnp.sum(w), 1.0)


def decode(probs: np.ndarray, tag_names, unsure_at: float | None = None) -> list[Parse]:
  """float[B, T, 3] stance probabilities -> one :class:`Parse` per request (each tag's most
  probable stance; with ``unsure_at``, a read tag whose other polarity -- avoid for a wanted
  tag, want for an avoided one -- has at least that probability is also listed as unsure)."""
  probs = np.asarray(probs)
  best = probs.argmax(-1)  # [B, T]
  other = np.where(best == WANT, probs[..., AVOID], probs[..., WANT])  # [B, T]
  doubt = (best != NONE) & (other >= (np.inf if unsure_at is None else unsure_at))  # [B, T]
  out = []
  for b in range(probs.shape[0]):
    want = tuple((tag_names[t], float(probs[b, t, WANT])) for t in np.nonzero(best[b] == WANT)[0])
    avoid = tuple((tag_names[t], float(probs[b, t, AVOID]))
                  for t in np.nonzero(best[b] == AVOID)[0])
    unsure = tuple((tag_names[t], float(other[b, t])) for t in np.nonzero(doubt[b])[0])
    out.append(Parse(want, avoid, unsure))
  return out
