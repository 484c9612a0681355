"""The DPR layers: prompt adapter, Fusion and the sparse Mixture-of-Experts.

Design (ours; the paper's full text is not available):

* **Prompt adapter** ``A``: text space -> item space. A 2-layer MLP maps the frozen encoder's
  prompt embedding ``p`` (D_t = 384) to ``a = A(p)`` in the d-dimensional space of the item table.
  Stage 2 trains it alone so that ``a`` scores the items of the prompt's tag(s) highest
  (``a @ E^T``): ``a`` names *what* the prompt is about, not which way to steer.
* **Router**: float32 logits over E experts from ``[p, a]`` -- the raw text carries the polarity
  ("more X" vs "no X"), ``a`` the topic -- top-k experts per example, gated by their
  probabilities under the softmax over all E (Switch-style, so the steering loss trains the
  router for every k; ``dpr.gates``), a load-balance loss (training only). ``routing="polarity"``
  is the ablation's reference instead: two experts, chosen by the request's polarity (the
  parser's), gate 1.
* **Experts**: each an MLP on ``x = [h, a, h * a]`` (the user vector, the topic, their
  interaction; with ``use_profile`` also the user's tag profile, :func:`tag_profile`) returning
  a steering offset in item space. Positive and negative prompts can be routed to different
  experts, so "more X" and "no X" never have to share weights.
* **Fusion**: ``[h', b] = [h, 0] + has_prompt * sum_k gate_k * expert_k(x)``. The retrieval
  space is the item table's d dimensions plus one coordinate per tag: item ``i`` is
  ``[e_i, tags_i]`` (its multi-hot tags), the steered user is ``[h', b]``, and the score is
  ``h' . e_i + b . tags_i`` -- still one matrix product over the whole catalogue. The tag
  coordinates let a prompt raise or lower a whole tag (a learned, soft filter) while the d-part
  re-ranks inside it; an offset in the d dimensions alone cannot add a constant to every item
  of a tag without also reshuffling the items inside the tag. Without a prompt the offset is
  masked to exactly zero: plain sequential recommendation is untouched and the same backbone
  checkpoint serves prompted and unprompted requests.

All layers work on the backbone's user vector ``h`` (B, d), so they sit unchanged on SASRec and
GRU4Rec.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from dpr_jax.models.layers import partitioned
from dpr_jax.models.moe import RouteOutput, Router, SparseMoE, load_balance_loss

Array = jax.Array


def tag_profile(items: Array, item_tags: Array) -> Array:
  """The user's tag profile: each tag's share among the tags of the history's items.

  Args:
    items: int[B, H] item ids, 0 = padding (item_tags' row 0 is zero).
    item_tags: float[V, T] multi-hot tags.
  Returns:
    float32[B, T], rows summing to 1 (0 for an empty history).
  """
  counts = jnp.sum(jnp.take(item_tags.astype(jnp.float32), items, axis=0), axis=1)  # [B, T]
  return counts / jnp.maximum(jnp.sum(counts, axis=-1, keepdims=True), 1.0)


class PromptAdapter(nn.Module):
  """p float[B, D_t] -> a float[B, d] (item space)."""

  embed_dim: int
  hidden_dim: int = 256

  @nn.compact
  def __call__(self, p: Array) -> Array:
    init = nn.initializers.xavier_uniform()
    with jax.named_scope("prompt_adapter"):
      y = nn.Dense(self.hidden_dim, kernel_init=partitioned(init, ("text", "mlp")))(p)
      y = nn.gelu(y)
      return nn.Dense(self.embed_dim, kernel_init=partitioned(init, ("mlp", "embed")))(y)


@dataclasses.dataclass(frozen=True)
class SteerOutput:
  user: Array  # float[B, d] the modulated user vector h'
  tag_bias: Array  # float[B, T] the user's weights on the tag coordinates (0 without prompt)
  topic: Array  # float[B, d] the adapted prompt a = A(p)
  route: RouteOutput


ROUTING = ("learned", "polarity")


class DPRHead(nn.Module):
  """Adapter + router + experts + fusion on top of a backbone's user vector.

  Attributes:
    embed_dim: d of the backbone and item table.
    num_experts, top_k, expert_hidden: the MoE (see dpr_jax.models.moe for dispatch).
    gates: the router's gates, one of dpr_jax.models.moe.GATES.
    routing: ``"learned"`` (the router) or ``"polarity"`` (2 experts: 0 for positive requests,
      1 for negative ones; needs ``negative`` in the call).
    use_profile: the experts also read the user's tag profile (``config.dpr.user_profile``).
  """

  embed_dim: int
  num_tags: int
  adapter_hidden: int = 256
  num_experts: int = 4
  top_k: int = 1
  expert_hidden: int = 256
  dispatch: str = "auto"
  gates: str = "probs"
  routing: str = "learned"
  use_profile: bool = False

  def setup(self):
    if self.routing not in ROUTING:
      raise ValueError(f"routing={self.routing!r} must be one of {ROUTING}")
    if self.routing == "polarity" and (self.num_experts, self.top_k) != (2, 1):
      raise ValueError("routing='polarity' needs num_experts=2 and top_k=1")
    self.adapter = PromptAdapter(self.embed_dim, self.adapter_hidden)
    if self.routing == "learned":
      self.router = Router(self.num_experts, self.top_k, self.gates)
    self.experts = SparseMoE(self.num_experts, self.top_k, self.expert_hidden,
                             self.embed_dim + self.num_tags, dispatch=self.dispatch)

  def adapt(self, p: Array) -> Array:
    """Stage 2's view: the prompt in item space, float[B, d]."""
    return self.adapter(p)

  def route(self, p: Array, a: Array, negative: Array | None = None) -> RouteOutput:
    """The routing of prompts p float[B, D_t] with topics a float[B, d] (B rows)."""
    if self.routing == "learned":
      return self.router(jnp.concatenate([p, a], axis=-1).astype(jnp.float32))
    if negative is None:
      raise ValueError("routing='polarity' routes by the request's polarity: pass `negative`")
    index = negative.astype(jnp.int32)[:, None]  # [B, 1]
    probs = jax.nn.one_hot(index[:, 0], 2, dtype=jnp.float32)  # [B, 2]
    return RouteOutput(expert_index=index, gates=jnp.ones(index.shape, jnp.float32),
                       router_probs=probs, load_balance_loss=load_balance_loss(index, probs))

  def routes(self, p: Array, negative: Array | None = None) -> Array:
    """int32[B, K]: the experts chosen for prompts p float[B, D_t] (for routing reports)."""
    return self.route(p, self.adapter(p), negative).expert_index

  def __call__(self, h: Array, p: Array, has_prompt: Array,
               profile: Array | None = None, negative: Array | None = None) -> SteerOutput:
    """Steers user vectors.

    Args:
      h: float[B, d] backbone user vectors.
      p: float[B, D_t] prompt embeddings (anything where ``has_prompt`` is False).
      has_prompt: bool[B].
      profile: float[B, T], the users' :func:`tag_profile` (read with ``use_profile`` only).
      negative: bool[B], the requests' polarity (read with ``routing="polarity"`` only).
    """
    a = self.adapter(p)  # [B, d]
    route = self.route(p, a, negative)
    x = jnp.concatenate([h, a, h * a], axis=-1)  # [B, 3d]
    if self.use_profile:
      if profile is None:
        raise ValueError("this head reads the user's tag profile (dpr.user_profile): pass it")
      x = jnp.concatenate([x, profile.astype(x.dtype)], axis=-1)  # [B, 3d + T]
    with jax.named_scope("fusion"):
      offset = jnp.where(has_prompt[:, None], self.experts(x, route), 0.0)  # [B, d + T]
      user = h + offset[:, :self.embed_dim]
    return SteerOutput(user=user, tag_bias=offset[:, self.embed_dim:], topic=a, route=route)


NEGATIVE_STEERING = ("full", "tags", "subtract")
# "subtract" keeps a negative request's tag coordinates that are lowered by at least this share
# of its most-lowered one (chosen on the development backbone, reports/experiments.md).
NEGATIVE_FOCUS = 0.5


def negative_part(h: Array, user: Array, tag_bias: Array, negative: Array,
                  mode: str) -> tuple[Array, Array]:
  """How a negative request ("no horror") steers at inference (``config.dpr.negative_steering``).

  * ``"full"``: the head's whole offset, as trained.
  * ``"tags"``: its tag coordinates only; the item-space part of the user vector stays ``h``.
  * ``"subtract"``: the item-space offset as trained, and of the tag coordinates only the tags
    the request removes: those lowered by at least :data:`NEGATIVE_FOCUS` times the most-lowered
    one. A negative request then never raises a tag: the head's small side moves ("no comedy"
    also lifts Drama and slightly lowers Romance, measured on ML-1M) reorder the items that
    remain, and that is what cost NDCG against the hard filter.

  Rows where ``negative`` is False are returned unchanged. The polarity comes from
  dpr_jax.prompts.combine (the negation lexicon), not from the head.

  Args:
    h: float[B, d] backbone user vectors; user: float[B, d] the head's h'; tag_bias: float[B, T];
    negative: bool[B]; mode: one of :data:`NEGATIVE_STEERING`.
  Returns:
    (user float[B, d], tag_bias float[B, T]).
  """
  if mode not in NEGATIVE_STEERING:
    raise ValueError(f"negative_steering must be one of {NEGATIVE_STEERING}, got {mode!r}")
  neg = negative[:, None]
  if mode == "tags":
    return jnp.where(neg, h, user), tag_bias
  if mode == "subtract":
    lowered = jnp.minimum(tag_bias, 0.0)  # [B, T]
    named = lowered <= NEGATIVE_FOCUS * jnp.min(lowered, axis=-1, keepdims=True)
    return user, jnp.where(neg & named, lowered, jnp.where(neg, 0.0, tag_bias))
  return user, tag_bias


POSITIVE_STEERING = ("full", "focus")
# "focus" drops a positive request's raised tag coordinates below this share of its most-raised
# one (the same rule as NEGATIVE_FOCUS, mirrored).
POSITIVE_FOCUS = 0.5


def positive_part(tag_bias: Array, positive: Array, mode: str) -> Array:
  """How a positive request ("more comedy") steers at inference (``config.dpr.positive_steering``).

  * ``"full"``: the head's tag coordinates as trained.
  * ``"focus"``: of the tags the head raises, only those raised by at least
    :data:`POSITIVE_FOCUS` times the most-raised one (the tag(s) the request names) stay raised;
    the small raises of other tags are dropped, the lowered tags kept. The mirror of
    ``negative_steering="subtract"``: the side raises (for "more comedy" the head also lifts
    tags that co-occur with Comedy) pull items of those tags up and reorder the list; the
    lowerings carry what the head learnt about the user's habits (which tags an off-habit
    request is *not* about) and help. The item-space offset is kept either way.

  Rows where ``positive`` is False are returned unchanged.

  Args:
    tag_bias: float[B, T]; positive: bool[B]; mode: one of :data:`POSITIVE_STEERING`.
  Returns:
    tag_bias float[B, T].
  """
  if mode not in POSITIVE_STEERING:
    raise ValueError(f"positive_steering must be one of {POSITIVE_STEERING}, got {mode!r}")
  if mode == "full":
    return tag_bias
  named = tag_bias >= POSITIVE_FOCUS * jnp.max(tag_bias, axis=-1, keepdims=True)
  side_raise = (tag_bias > 0) & ~named
  return jnp.where(positive[:, None] & side_raise, 0.0, tag_bias)


def scale_offset(h: Array, user: Array, tag_bias: Array, rows: Array,
                 scale: float | Array) -> tuple[Array, Array]:
  """How strongly a request part steers at inference (``config.dpr.positive_scale``; in the
  steering evaluation also ``filter_positive_scale`` / ``filter_negative_scale``).

  The head's offset of the chosen rows, both parts, times ``scale``: ``h' = h + s (h'_head -
  h)``, ``b = s b_head``. 1 is the head as trained; above 1 the request's wish weighs more
  against the user's habits, below 1 less (0: the backbone). Rows where ``rows`` is False are
  returned unchanged.

  Args:
    h: float[B, d] backbone user vectors; user: float[B, d] the head's h'; tag_bias: float[B, T];
    rows: bool[B]; scale: a float >= 0, or float[B] (one per row: a traced input, so one
    compiled program serves every strength).
  Returns:
    (user float[B, d], tag_bias float[B, T]).
  """
  scale = jnp.asarray(scale, jnp.float32)
  scale = scale[:, None] if scale.ndim == 1 else scale  # [B, 1] or []
  s = jnp.where(rows[:, None], scale, jnp.float32(1.0))  # [B, 1]
  return h + s * (user - h), s * tag_bias


def compose(h: Array, steered: list[tuple[Array, Array]]) -> tuple[Array, Array]:
  """Steers with several prompt parts at once: their offsets add.

  A combined request ("a comedy, but no romance") is split into a positive and a negative part
  (dpr_jax.prompts.combine); each part runs through the head on its own, and the user vector
  takes both offsets: ``h' = h + sum_j (h'_j - h)``, ``b = sum_j b_j``. Each part's offset was
  trained to move the ranking for its own wish, and in the retrieval space the tag coordinates of
  different tags are independent, so the sum raises one tag while lowering the other. A part
  with ``has_prompt`` False contributes exactly zero, so one-part requests are unchanged.

  Args:
    h: float[B, d] backbone user vectors.
    steered: ``[(user float[B, d], tag_bias float[B, T])]``, one pair per part.

  Returns:
    (user float[B, d], tag_bias float[B, T]).
  """
  user = h + sum(u - h for u, _ in steered)
  tag_bias = sum(b for _, b in steered)
  return user, tag_bias
