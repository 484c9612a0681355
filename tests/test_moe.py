"""SparseMoE / Router: both dispatch paths against a per-example loop, grads, routing, sharding."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from dpr_jax.models.moe import RouteOutput, Router, SparseMoE, load_balance_loss

DIN, HID, DOUT = 8, 12, 5


def _gelu_tanh(v: np.ndarray) -> np.ndarray:
  """nn.gelu's default (tanh) approximation, in numpy."""
  return 0.5 * v * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (v + 0.044715 * v**3)))


def per_expert_reference(params, x, expert_index, gates) -> np.ndarray:
  """out[b] = sum_k gates[b, k] * expert_{expert_index[b, k]}(x[b]), one example at a time."""
  w1, b1, w2, b2 = (np.asarray(params[n], np.float64) for n in ("w1", "b1", "w2", "b2"))
  x = np.asarray(x, np.float64)
  expert_index, gates = np.asarray(expert_index), np.asarray(gates, np.float64)
  out = np.zeros((x.shape[0], w2.shape[-1]))
  for b in range(x.shape[0]):
    for k in range(expert_index.shape[1]):
      e = expert_index[b, k]
      hidden = _gelu_tanh(x[b] @ w1[e] + b1[e])
      out[b] += gates[b, k] * (hidden @ w2[e] + b2[e])
  return out


def _random_route(rng: np.random.Generator, batch: int, num_experts: int,
                  top_k: int) -> RouteOutput:
  """Distinct random experts per row and softmax gates (probs/aux unused by SparseMoE)."""
  index = np.argsort(rng.random((batch, num_experts)), axis=1)[:, :top_k].astype(np.int32)
  logits = rng.normal(size=(batch, top_k))
  gates = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  probs = np.full((batch, num_experts), 1.0 / num_experts)
  return RouteOutput(expert_index=jnp.asarray(index), gates=jnp.asarray(gates, jnp.float32),
                     router_probs=jnp.asarray(probs, jnp.float32),
                     load_balance_loss=jnp.float32(1.0))


def _setup(num_experts: int, top_k: int, batch: int = 37, seed: int = 0):
  """Module, variables, x float32[B, DIN] and a random route.

  Params are drawn in numpy with the shapes the module declares (``jax.eval_shape``): each
  distinct shape of an on-device random init costs a CPU compile, which would dominate here.
  Biases are non-zero so the per-row bias gathers are exercised.
  """
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(batch, DIN)), jnp.float32)
  route = _random_route(rng, batch, num_experts, top_k)
  module = SparseMoE(num_experts=num_experts, top_k=top_k, hidden_dim=HID, out_dim=DOUT)
  shapes = nn.unbox(jax.eval_shape(module.init, jax.random.key(0), x, route))["params"]
  scale = {"w1": DIN**-0.5, "w2": HID**-0.5, "b1": 0.1, "b2": 0.1}
  params = {n: jnp.asarray(scale[n] * rng.normal(size=v.shape), jnp.float32)
            for n, v in shapes.items()}
  return module, {"params": params}, x, route


def _apply(module: SparseMoE, dispatch: str, variables, x, route):
  return jax.jit(module.clone(dispatch=dispatch).apply)(variables, x, route)


@pytest.mark.parametrize("num_experts", [4, 16])
@pytest.mark.parametrize("top_k", [1, 2])
def test_paths_match_reference(num_experts, top_k):
  module, variables, x, route = _setup(num_experts, top_k)
  want = per_expert_reference(variables["params"], x, route.expert_index, route.gates)
  for dispatch in ("dense", "grouped"):
    got = _apply(module, dispatch, variables, x, route)
    assert got.shape == (37, DOUT) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=1e-5, err_msg=dispatch)


def test_grads_dense_match_grouped():
  module, variables, x, route = _setup(num_experts=16, top_k=2)
  cot = jnp.asarray(np.random.default_rng(1).normal(size=(37, DOUT)), jnp.float32)

  def loss(dispatch, params, x, gates):
    r = route.replace(gates=gates)
    return jnp.sum(_apply(module, dispatch, {"params": params}, x, r) * cot)

  grad_fn = jax.jit(jax.grad(loss, argnums=(1, 2, 3)), static_argnums=0)
  grads = {d: grad_fn(d, variables["params"], x, route.gates) for d in ("dense", "grouped")}
  leaves_d, tree_d = jax.tree.flatten(grads["dense"])
  leaves_g, tree_g = jax.tree.flatten(grads["grouped"])
  assert tree_d == tree_g
  for a, b in zip(leaves_d, leaves_g):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)
  # Experts nobody routed to get exactly zero grads in both paths.
  unused = np.setdiff1d(np.arange(16), np.asarray(route.expert_index))
  for path_grads in grads.values():
    for a in (path_grads[0]["w1"], path_grads[0]["b2"]):
      assert np.all(np.asarray(a)[unused] == 0)


def test_router_outputs():
  num_experts, top_k = 16, 2
  x = jax.random.normal(jax.random.key(0), (37, DIN), jnp.bfloat16)
  router = Router(num_experts=num_experts, top_k=top_k)
  variables = jax.jit(router.init)(jax.random.key(1), x)
  route = jax.jit(router.apply)(variables, x)
  assert route.expert_index.shape == (37, top_k) and route.expert_index.dtype == jnp.int32
  for a in (route.gates, route.router_probs, route.load_balance_loss):
    assert a.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(route.router_probs.sum(-1)), 1.0, atol=1e-6)
  index = np.asarray(route.expert_index)
  # Switch gates: the chosen experts' probabilities under the softmax over all experts ...
  np.testing.assert_array_equal(np.asarray(route.gates),
                                np.take_along_axis(np.asarray(route.router_probs), index, 1))
  assert np.all(np.asarray(route.gates.sum(-1)) < 1.0)
  # ... or those renormalised over the K chosen (= softmax over the K chosen logits).
  renorm = jax.jit(router.clone(gates="renormalized").apply)(variables, x)
  np.testing.assert_allclose(np.asarray(renorm.gates.sum(-1)), 1.0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(renorm.gates),
                             np.asarray(route.gates / route.gates.sum(-1, keepdims=True)),
                             rtol=1e-6)
  assert all(len(set(row)) == top_k for row in index)
  # The chosen experts are the top-K of the router probabilities, best first.
  probs = np.asarray(route.router_probs)
  np.testing.assert_array_equal(index[:, 0], probs.argmax(-1))
  with pytest.raises(ValueError, match="top_k"):
    Router(num_experts=2, top_k=3).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="no gradient"):  # K = 1 renormalised is the constant 1
    Router(num_experts=4, top_k=1, gates="renormalized").init(jax.random.key(0), x)


@pytest.mark.parametrize("top_k,gates", [(1, "probs"), (2, "probs"), (2, "renormalized")])
def test_the_task_loss_trains_the_router(top_k, gates):
  """A loss on the MoE's output alone (no load-balance term) reaches the router's kernel."""
  x = jax.random.normal(jax.random.key(0), (16, DIN))
  router = Router(num_experts=4, top_k=top_k, gates=gates)
  moe = SparseMoE(4, top_k, HID, DOUT)
  r_params = nn.unbox(router.init(jax.random.key(1), x))
  m_params = nn.unbox(moe.init(jax.random.key(2), x, router.apply(r_params, x)))
  target = jax.random.normal(jax.random.key(3), (16, DOUT))

  def loss(rp):
    return jnp.mean((moe.apply(m_params, x, router.apply(rp, x)) - target) ** 2)

  grad = jax.grad(loss)(r_params)["params"]["kernel"]
  assert np.abs(np.asarray(grad)).max() > 1e-4


def test_load_balance_loss():
  num_experts = 8
  apply = jax.jit(Router(num_experts=num_experts, top_k=1).apply)
  eye = jnp.eye(num_experts, dtype=jnp.float32)
  # Uniform: example i is a one-hot on expert i, so f_e = 1/E and mean P_e = 1/E.
  uniform = apply({"params": {"kernel": 3.0 * eye}}, eye)
  np.testing.assert_array_equal(np.asarray(uniform.expert_index[:, 0]), np.arange(num_experts))
  np.testing.assert_allclose(float(uniform.load_balance_loss), 1.0, atol=1e-6)
  # Collapse: every example prefers expert 0.
  kernel = jnp.zeros((num_experts, num_experts)).at[:, 0].set(3.0)
  collapsed = apply({"params": {"kernel": kernel}}, jnp.ones((16, num_experts)))
  assert np.all(np.asarray(collapsed.expert_index) == 0)
  p0 = float(collapsed.router_probs[:, 0].mean())
  np.testing.assert_allclose(float(collapsed.load_balance_loss), num_experts * p0, rtol=1e-6)
  assert float(collapsed.load_balance_loss) > 1.5
  # Hard routing with probability 1 on one expert gives the maximum, E.
  index = jnp.zeros((4, 1), jnp.int32)
  probs = jax.nn.one_hot(jnp.zeros(4, jnp.int32), num_experts)
  np.testing.assert_allclose(float(load_balance_loss(index, probs)), num_experts)


def test_expert_params_partitioned_by_expert():
  module, _, x, route = _setup(num_experts=4, top_k=2)
  specs = nn.get_partition_spec(jax.eval_shape(module.init, jax.random.key(0), x, route))
  specs = specs["params"]
  assert specs["w1"] == P("expert", "embed", "mlp")
  assert specs["b1"] == P("expert", "mlp")
  assert specs["w2"] == P("expert", "mlp", "embed")
  assert specs["b2"] == P("expert", "embed")
  router_vars = jax.eval_shape(Router(4, 2).init, jax.random.key(0), x)
  router_specs = nn.get_partition_spec(router_vars)["params"]
  assert router_specs["kernel"] == P("embed", None)


def test_jit_auto_dispatch_and_bf16():
  assert SparseMoE(8, 2, HID, DOUT).resolved_dispatch() == "dense"
  assert SparseMoE(9, 2, HID, DOUT).resolved_dispatch() == "grouped"
  with pytest.raises(ValueError, match="dispatch"):
    SparseMoE(4, 2, HID, DOUT, dispatch="sparse").resolved_dispatch()
  module, variables, x, route = _setup(num_experts=16, top_k=2)
  want = per_expert_reference(variables["params"], x, route.expert_index, route.gates)
  jitted = jax.jit(module.apply)(variables, x, route)  # "auto" -> grouped for E=16
  np.testing.assert_allclose(np.asarray(jitted), want, atol=1e-5, rtol=1e-5)
  for dispatch in ("dense", "grouped"):
    low = jax.jit(module.clone(dispatch=dispatch, dtype=jnp.bfloat16).apply)(variables, x, route)
    assert low.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(low, np.float32), want, atol=0.1, rtol=0.05)
