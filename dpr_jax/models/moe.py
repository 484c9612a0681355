"""Sparse Mixture-of-Experts: a top-K router and a bank of MLP experts.

Used to steer a user vector with a prompt: the :class:`Router` reads a routing input (e.g. the
prompt embedding) and picks K of E experts per example; :class:`SparseMoE` then applies those
experts to the user vector and mixes their outputs with the router's gates::

  route = Router(num_experts=E, top_k=K)(prompt)  # RouteOutput
  y = SparseMoE(num_experts=E, top_k=K, hidden_dim=H, out_dim=Dout)(user, route)  # [B, Dout]

Capacity / dropless behaviour: both dispatch paths are *dropless*. There is no expert capacity
and no token is ever dropped, whatever the routing imbalance. The cost is fixed by the shapes,
never by the routing:
  * ``"dense"``:   every expert runs on every example, B * E expert evaluations (einsums), and
    the unselected ones get a zero combine weight. Cheapest for few experts (no gathers).
  * ``"grouped"``: exactly B * K expert evaluations. The (example, expert) assignments are sorted
    by expert and both expert layers run as one ``jax.lax.ragged_dot`` over the contiguous
    per-expert groups. Wins once E is large relative to K, *on GPU/TPU* where ragged_dot has a
    grouped kernel. On CPU, jax lowers ragged_dot to a masked dense contraction ([E, M, Din]
    intermediate, E * B * K work), so there the grouped path is no cheaper than the dense one.
Both give the same result up to float rounding (tests/test_moe.py checks them against a
per-example loop).

Sharding: the expert weights carry the ``expert`` logical axis first, which
:data:`dpr_jax.sharding.LOGICAL_AXIS_RULES` maps to the ``model`` mesh axis; the router kernel
is small and replicated.
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from dpr_jax import sharding
from dpr_jax.models.layers import partitioned

Array = jax.Array

DISPATCH_MODES = ("auto", "dense", "grouped")
# "auto" uses the dense path up to this many experts and the grouped path above it.
AUTO_DENSE_MAX_EXPERTS = 8


@flax.struct.dataclass
class RouteOutput:
  """The router's decision for a batch of B examples over E experts, K chosen per example."""

  expert_index: Array  # int32[B, K]   chosen experts per example, distinct within a row
  gates: Array  # float32[B, K]  combine weights (``Router.gates``)
  router_probs: Array  # float32[B, E]  softmax over all experts (for the auxiliary loss)
  load_balance_loss: Array  # float32[]  E * sum_e f_e * P_e; 1.0 when perfectly balanced


def load_balance_loss(expert_index: Array, router_probs: Array,
                      weight: Array | None = None) -> Array:
  """Switch-Transformer auxiliary loss, float32[].

  ``E * sum_e f_e * P_e`` where f_e is the fraction of the B*K assignments that went to expert e
  (not differentiable) and P_e the mean router probability of e over the batch. Its minimum,
  1.0, is reached when both are uniform; it is E when every example goes to one expert with
  probability 1.

  Args:
    expert_index: int[B, K] chosen experts.
    router_probs: float[B, E] softmax over all experts.
    weight: float[B] or None: rows with weight 0 (padding) do not count; the means over the
      batch become weighted means.
  """
  num_experts = router_probs.shape[-1]
  w = (jnp.ones(router_probs.shape[:1], jnp.float32) if weight is None
       else weight.astype(jnp.float32))
  w = w / jnp.maximum(jnp.sum(w), 1e-9)  # [B]
  assign = jax.nn.one_hot(expert_index, num_experts, dtype=jnp.float32)  # [B, K, E]
  fraction = jnp.einsum("b,be->e", w, jnp.sum(assign, axis=1)) / expert_index.shape[-1]  # [E]
  mean_prob = jnp.einsum("b,be->e", w, router_probs.astype(jnp.float32))  # [E]
  return num_experts * jnp.sum(fraction * mean_prob)


GATES = ("probs", "renormalized")


class Router(nn.Module):
  """Top-K softmax router. Always computes in float32, whatever the input dtype.

  The gates carry the task's gradient into the router for every K (Switch Transformer):

  * ``"probs"``: gate_k = p_{e_k}, the chosen expert's probability under the softmax over all E
    experts. With K = 1 the output is ``p_e * expert_e(x)``: the loss moves the router's logits
    (a softmax over K = 1 chosen logits would be exactly 1.0, with zero gradient).
  * ``"renormalized"``: those probabilities divided by their sum over the K chosen,
    ``softmax(top-K logits)``; their sum is 1, but with K = 1 they are the constant 1.0 again, so
    only the load-balance loss would shape the router (refused for K = 1).

  Attributes:
    num_experts: E.
    top_k: K, experts chosen per example (1 <= K <= E).
    gates: one of :data:`GATES`.
  """

  num_experts: int
  top_k: int
  gates: str = "probs"

  @nn.compact
  def __call__(self, x: Array) -> RouteOutput:
    """x float[B, Dr] -> RouteOutput with B rows."""
    if not 1 <= self.top_k <= self.num_experts:
      raise ValueError(f"top_k={self.top_k} must be in [1, num_experts={self.num_experts}]")
    if self.gates not in GATES:
      raise ValueError(f"gates={self.gates!r} must be one of {GATES}")
    if self.gates == "renormalized" and self.top_k == 1 and self.num_experts > 1:
      raise ValueError("gates='renormalized' with top_k=1 is the constant 1.0: the router would"
                       " get no gradient from the task; use gates='probs'")
    kernel = self.param(
        "kernel",
        partitioned(nn.initializers.normal(stddev=x.shape[-1]**-0.5), ("embed", None)),
        (x.shape[-1], self.num_experts), jnp.float32)  # [Dr, E]
    with jax.named_scope("router"):
      logits = jnp.einsum("bd,de->be", x.astype(jnp.float32),
                          kernel.astype(jnp.float32))  # [B, E]
      router_probs = jax.nn.softmax(logits, axis=-1)  # [B, E]
      top_probs, expert_index = sharding.top_k(router_probs, self.top_k)  # [B, K], [B, K]
      if self.gates == "renormalized":
        top_probs = top_probs / jnp.sum(top_probs, axis=-1, keepdims=True)
      gates = top_probs  # [B, K]
      expert_index = expert_index.astype(jnp.int32)
      aux = load_balance_loss(expert_index, router_probs)
    return RouteOutput(expert_index=expert_index, gates=gates, router_probs=router_probs,
                       load_balance_loss=aux)


class SparseMoE(nn.Module):
  """E MLP experts ``y = W2_e gelu(W1_e x + b1_e) + b2_e``, mixed by a :class:`RouteOutput`.

  Attributes:
    num_experts: E.
    top_k: K; must match the router's.
    hidden_dim: H, each expert's hidden width.
    out_dim: Dout.
    dispatch: "dense" (all experts on all examples, B*E evaluations), "grouped" (sorted
      assignments + ragged_dot, B*K evaluations) or "auto" (dense when E <= 8, else grouped).
      Both are dropless; see the module docstring.
    dtype: compute dtype of the expert matmuls (params stay float32).
  """

  num_experts: int
  top_k: int
  hidden_dim: int
  out_dim: int
  dispatch: str = "auto"
  dtype: Any = jnp.float32

  def resolved_dispatch(self) -> str:
    """The path actually taken: "dense" or "grouped"."""
    if self.dispatch not in DISPATCH_MODES:
      raise ValueError(f"dispatch={self.dispatch!r} must be one of {DISPATCH_MODES}")
    if self.dispatch == "auto":
      return "dense" if self.num_experts <= AUTO_DENSE_MAX_EXPERTS else "grouped"
    return self.dispatch

  @nn.compact
  def __call__(self, x: Array, route: RouteOutput) -> Array:
    """x float[B, Din], route with expert_index/gates [B, K] -> float[B, Dout] (self.dtype).

    out[b] = sum_k gates[b, k] * expert_{expert_index[b, k]}(x[b]).
    """
    num_examples, din = x.shape
    if route.expert_index.shape != (num_examples, self.top_k):
      raise ValueError(f"route.expert_index has shape {route.expert_index.shape}, expected"
                       f" {(num_examples, self.top_k)}")
    e, h, dout = self.num_experts, self.hidden_dim, self.out_dim
    # fan_in over the middle axis, axis 0 indexes experts (each expert initialised on its own).
    init = nn.initializers.variance_scaling(
        1.0, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1, batch_axis=(0,))
    zeros = nn.initializers.zeros_init()
    w1 = self.param("w1", partitioned(init, ("expert", "embed", "mlp")),
                    (e, din, h), jnp.float32)  # [E, Din, H]
    b1 = self.param("b1", partitioned(zeros, ("expert", "mlp")), (e, h), jnp.float32)  # [E, H]
    w2 = self.param("w2", partitioned(init, ("expert", "mlp", "embed")),
                    (e, h, dout), jnp.float32)  # [E, H, Dout]
    b2 = self.param("b2", partitioned(zeros, ("expert", "embed")),
                    (e, dout), jnp.float32)  # [E, Dout]
    x, w1, b1, w2, b2 = (a.astype(self.dtype) for a in (x, w1, b1, w2, b2))
    gates = route.gates.astype(jnp.float32)  # [B, K]
    expert_index = route.expert_index.astype(jnp.int32)  # [B, K]
    if self.resolved_dispatch() == "dense":
      with jax.named_scope("moe_dense"):
        out = _dense_experts(x, w1, b1, w2, b2, expert_index, gates)
    else:
      with jax.named_scope("moe_grouped"):
        out = _grouped_experts(x, w1, b1, w2, b2, expert_index, gates)
    return out.astype(self.dtype)


def _dense_experts(x: Array, w1: Array, b1: Array, w2: Array, b2: Array,
                   expert_index: Array, gates: Array) -> Array:
  """Every expert on every example; unselected experts get weight 0. -> float32[B, Dout]."""
  num_experts = w1.shape[0]
  hidden = jnp.einsum("bd,edh->beh", x, w1) + b1[None]  # [B, E, H]
  hidden = nn.gelu(hidden)
  y = jnp.einsum("beh,eho->beo", hidden, w2) + b2[None]  # [B, E, Dout]
  # Combine matrix: gates scattered to their experts, zero elsewhere (rows of K distinct ids).
  onehot = jax.nn.one_hot(expert_index, num_experts, dtype=jnp.float32)  # [B, K, E]
  combine = jnp.einsum("bke,bk->be", onehot, gates)  # [B, E]
  return jnp.einsum("beo,be->bo", y.astype(jnp.float32), combine)  # [B, Dout]


def _grouped_experts(x: Array, w1: Array, b1: Array, w2: Array, b2: Array,
                     expert_index: Array, gates: Array) -> Array:
  """Only the B*K chosen (example, expert) pairs, grouped by expert. -> float32[B, Dout]."""
  num_examples, top_k = expert_index.shape
  num_experts = w1.shape[0]
  m = num_examples * top_k
  flat_expert = expert_index.reshape(m)  # [M], M = B*K, assignment a = b*K + k
  flat_example = jnp.repeat(jnp.arange(num_examples, dtype=jnp.int32), top_k)  # [M]
  # Sort assignments by expert so that each expert's rows are contiguous (ragged_dot groups).
  order = jnp.argsort(flat_expert, stable=True)  # [M]
  sorted_expert = flat_expert[order]  # [M]
  group_sizes = jnp.bincount(flat_expert, length=num_experts).astype(jnp.int32)  # [E]
  xs = jnp.take(x, flat_example[order], axis=0)  # [M, Din]
  hidden = jax.lax.ragged_dot(xs, w1, group_sizes)  # [M, H]
  hidden = hidden + jnp.take(b1, sorted_expert, axis=0)
  hidden = nn.gelu(hidden)
  ys = jax.lax.ragged_dot(hidden, w2, group_sizes)  # [M, Dout]
  ys = ys + jnp.take(b2, sorted_expert, axis=0)
  # Unsort: row i of ys belongs to assignment order[i].
  inverse = jnp.zeros_like(order).at[order].set(jnp.arange(m, dtype=order.dtype))  # [M]
  y = jnp.take(ys, inverse, axis=0).reshape(num_examples, top_k, -1)  # [B, K, Dout]
  return jnp.einsum("bko,bk->bo", y.astype(jnp.float32), gates)  # [B, Dout]
