"""The PyTorch peer of the bench computes our SASRec's loss, gradients and ranking metrics.

Torch is a bench-only dependency: without it (CI) these tests skip.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dpr_jax.bench import peer
from dpr_jax.config import default_config
from dpr_jax.data.split import leave_one_out


def _setup(num_heads: int):
  c = default_config()
  c.data.max_len = 64
  c.model.embed_dim, c.model.mlp_dim, c.model.num_heads, c.model.vocab_multiple = 16, 32, num_heads, 8
  c.train.batch_size, c.eval.batch_size = 8, 16
  data = leave_one_out(peer.synthetic_ml1m_like(num_users=40, num_items=50, seed=1), 64)
  ours = peer.Ours(c, data)
  m = c.model
  module = peer.make_torch_sasrec(ours.model.vocab_size, 64, m.embed_dim, m.num_blocks, m.num_heads,
                                  m.mlp_dim, m.dropout)
  return c, data, ours, module


@pytest.mark.parametrize("num_heads", [1, 2])
def test_peer_loss_and_gradients_equal_ours(num_heads):
  _, data, ours, module = _setup(num_heads)
  inputs, targets = data.train_inputs[:8], data.train_targets[:8]
  assert 0 < (targets > 0).mean() < 1  # left padding present: the masks matter
  eq = peer.equivalence(ours, module, inputs, targets, data.num_items)
  for variant in ("dense", "compact"):
    assert eq[f"loss_rel_diff_{variant}"] < 1e-5
    assert eq[f"grad_max_rel_diff_{variant}"] < 1e-4
  # A wrong weight is detected: the check is not vacuous.
  with torch.no_grad():
    module.blocks[0].w0.mul_(1.01)
  module.eval()
  off = peer.torch_ce(module, torch.from_numpy(inputs).long(), torch.from_numpy(targets).long(),
                      data.num_items, compact=False).item()
  assert abs(off - eq["loss_jax"]) / eq["loss_jax"] > 1e-5


def test_compiled_peer_computes_the_same_loss_and_gradients():
  _, data, ours, module = _setup(2)
  inputs, targets = data.train_inputs[:8], data.train_targets[:8]
  eq = peer.equivalence(ours, module, inputs, targets, data.num_items, torch.compile(module))
  assert eq["loss_rel_diff_compiled"] < 1e-5 and eq["grad_max_rel_diff_compiled"] < 1e-4


@pytest.mark.parametrize("compiled", [False, True])
def test_peer_ranking_metrics_equal_ours(compiled):
  _, data, ours, module = _setup(1)
  peer.copy_params(ours.state.params, module)
  want = ours.evaluate(ours.state.params, data, "test")
  got = peer.torch_eval(module, data, "test", 16, data.num_items,
                        forward=torch.compile(module) if compiled else None)
  assert got["users"] == want["users"] == data.num_users
  for k in want:
    np.testing.assert_allclose(got[k], want[k], atol=1e-6, err_msg=k)


def test_peer_trains_with_dropout():
  c, data, _, module = _setup(1)
  opt = peer.torch_optimizer(module, c.train)
  for p in module.parameters():
    torch.nn.init.normal_(p, std=0.1)
  x = torch.from_numpy(data.train_inputs[:8]).long()
  y = torch.from_numpy(data.train_targets[:8]).long()
  losses = [peer.torch_train_step(module, opt, x, y, data.num_items, 1.0, compact=True).item()
            for _ in range(20)]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_model_flops_count_real_positions_only():
  m = default_config().model
  inputs = np.array([[0, 0, 3, 4], [1, 2, 3, 4]])
  per_pos = 8 * m.embed_dim**2 + 4 * m.embed_dim * m.mlp_dim
  want = m.num_blocks * (6 * per_pos + 4 * m.embed_dim * (2**2 + 4**2)) + 2 * 5 * 100 * m.embed_dim
  assert peer.model_flops(m, inputs, 5, 100) == pytest.approx(want)
  # More left padding costs nothing more.
  assert peer.model_flops(m, np.pad(inputs, ((0, 0), (3, 0))), 5, 100) == pytest.approx(want)
  # Ranking: the last block only for the last position (keys/values still everywhere).
  d, mlp = m.embed_dim, m.mlp_dim
  last = 4 * d * d * 6 + 2 * (4 * d * d + 4 * d * mlp) + 4 * d * 6
  full = 6 * per_pos + 4 * d * (2**2 + 4**2)
  want = (m.num_blocks - 1) * full + last + 2 * 2 * 100 * d
  assert peer.model_flops(m, inputs, 2, 100, last_only=True) == pytest.approx(want)
