"""dpr_jax SASRec against a PyTorch peer, back to back in one process.

  python -m dpr_jax.bench peer [--config configs/ml1m_sasrec.py] [--steps N] [--repeats R]

The peer is a faithful PyTorch reference written for this bench (:class:`TorchSASRec`): the same
pre-LayerNorm blocks, learned positions, causal single-/multi-head attention without q/k/v bias,
tanh-GELU feed-forward, dropout sites, final LayerNorm and shared item table, the same full
softmax cross-entropy over the catalogue at every supervised (non-padded) position, AdamW after
global-norm clipping. It is written the way one writes it in PyTorch: fused
``scaled_dot_product_attention``, ``F.cross_entropy(..., ignore_index=0)`` over the full logits
("dense"); a second variant ("compact") selects the supervised positions with a boolean index
before the output head, which eager PyTorch gets for free; a third ("compiled",
``--peer-variants ... compiled``) runs the compact one, and the evaluation's forward, through
``torch.compile``. Ratios are
quoted against each variant and against the fastest of those measured. RecBole's SASRec was not used: it
trains on the last position of each augmented prefix only (``loss_type: CE``), with post-LN
blocks and q/k/v biases -- another objective and architecture.

Ours runs as the trainer runs it: with ``train.compact_head`` (default) only the real positions
are computed (SASRec.packed: whole sequences laid into rows of L by first fit, every layer on
that static buffer of slots, sized by the packing level a full run of the config would give the
batch, the attention block-diagonal per row, the head at supervised positions), and evaluation
visits users
by input length with their left padding trimmed to a few static widths and computes the last
block for the last position only (``Evaluator``, ``SASRec.user_vector``) -- same values, less
work. The peer computes every position, as a plain PyTorch SASRec does.

Equivalence (run first, every time): our Flax parameters are copied into the torch module and,
with dropout off, the loss and every parameter gradient on one real batch are compared.

Timing: the repeats are interleaved (jax, torch-dense, torch-compact, jax, ...) so load drift on
a shared machine hits all alike; the ratio is of medians. Training runs ``--steps`` optimizer
steps per repeat (ours as one jit call of ``lax.scan`` over stacked batches, as the trainer does;
default ``train.steps_per_call``, the trainer's call: each of our calls also pays a fixed cost,
XLA:CPU faulting in the step's freshly mapped temporary buffer, which fewer steps per call spread
over fewer steps; ``reports/perf_log.md``, 2026-12-05);
evaluation ranks all users of the test split against the whole catalogue, seen items masked,
Recall/NDCG@10/20 (ours: :mod:`dpr_jax.eval.ranking`; the peer: the same rank rule in torch).

Floor: model FLOPs (analytic matmul FLOPs at the real positions, see :func:`model_flops`; training
= 3 x forward) over the dense float32 matmul rate measured in this process (``jnp.dot`` of two
2048x2048 matrices, measured again before every round of repeats, median), i.e. the
time the step would take if every FLOP ran at matmul speed; ``floor_fraction`` = that / measured.

Torch is a bench-only dependency (imported here only). Results: ``reports/bench_cpu/peer.{json,md}``
(``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import sharding
from dpr_jax.bench import common
from dpr_jax.data.pipeline import BatchOrder
from dpr_jax.data.split import SplitData, leave_one_out
from dpr_jax.data.types import InteractionData
from dpr_jax.errors import ConfigError, UserError
from dpr_jax.eval import report
from dpr_jax.eval.ranking import backbone_evaluator, eval_batches
from dpr_jax.models import build_backbone
from dpr_jax.train import packing
from dpr_jax.train.step import (
  create_state,
  jit_train_step,
  make_optimizer,
  make_train_step,
)
from dpr_jax.train.trainer import Schedule

ROOT = pathlib.Path(__file__).resolve().parents[2]
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


# ============================================================================ config and data
def synthetic_ml1m_like(num_users: int = 6040, num_items: int = 3416, seed: int = 0
                        ) -> InteractionData:
  """Users whose sequence lengths follow ML-1M's (>= 20, median ~96, mean ~165: lognormal).

  Items are drawn from a Zipf-like popularity. Only the shapes and the padding matter here.
  """
  rng = np.random.default_rng(seed)
  lengths = np.clip(np.exp(rng.normal(math.log(96), 1.04, num_users)), 20, 2314).astype(int)
  pop = 1.0 / np.arange(1, num_items + 1) ** 0.8
  pop /= pop.sum()
  seqs = [(rng.choice(num_items, n, p=pop) + 1).astype(np.int32) for n in lengths]
  return InteractionData(
      sequences=seqs, user_ids=[str(u) for u in range(num_users)],
      item_ids=[str(i) for i in range(1, num_items + 1)], item_titles=[""] * num_items,
      item_tags=[()] * num_items, tag_names=(), source_files=(), name="synthetic-ml1m-like")


def load_data(config, synthetic: bool) -> tuple[SplitData, str]:
  """ML-1M through the project's loaders when its files are there (DPR_DATA_DIR, --config.data.dir
  or an earlier download), else the synthetic stand-in; never downloads."""
  if not synthetic:
    from dpr_jax.data.prepare import available_data_dir, prepare
    directory = available_data_dir(config.data)
    if directory is not None:
      return prepare(config.data), f"{config.data.name} ({directory})"
  return leave_one_out(synthetic_ml1m_like(), config.data.max_len), "synthetic ML-1M-like lengths"


# ============================================================================ the PyTorch peer
def _torch():
  try:
    import torch  # Bench-only dependency.
  except ImportError:
    raise UserError("the PyTorch peer needs torch, a bench-only dependency: pip install "
                    "torch==2.13.0 (docs/benchmarks.md: PyTorch peer)") from None
  return torch


def make_torch_sasrec(vocab_size: int, max_len: int, embed_dim: int, num_blocks: int,
                      num_heads: int, mlp_dim: int, dropout: float):
  """TorchSASRec (a torch.nn.Module) with the architecture of dpr_jax.models.SASRec.

  Parameters are held in Flax's layouts (``kernel`` [in, ...out]) so they copy one to one.
  """
  torch = _torch()
  F = torch.nn.functional
  d, k = embed_dim, embed_dim // num_heads
  P = lambda *shape: torch.nn.Parameter(torch.empty(*shape))

  class Block(torch.nn.Module):

    def __init__(self):
      super().__init__()
      self.ln0_scale, self.ln0_bias = P(d), P(d)
      self.qkv = P(d, 3, num_heads, k)  # no bias, as ours
      self.out_kernel, self.out_bias = P(num_heads, k, d), P(d)
      self.ln1_scale, self.ln1_bias = P(d), P(d)
      self.w0, self.b0 = P(d, mlp_dim), P(mlp_dim)
      self.w1, self.b1 = P(mlp_dim, d), P(d)

    def forward(self, x, attn_bias, mask):
      b, l, _ = x.shape
      p = dropout if self.training else 0.0
      y = F.layer_norm(x, (d,), self.ln0_scale, self.ln0_bias, eps=1e-6)
      qkv = (y @ self.qkv.view(d, 3 * d)).view(b, l, 3, num_heads, k).permute(2, 0, 3, 1, 4)
      att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_bias,
                                           dropout_p=p, scale=k**-0.5)  # [B, H, L, K]
      y = att.transpose(1, 2).reshape(b, l, d) @ self.out_kernel.view(d, d) + self.out_bias
      x = x + F.dropout(y, p, self.training)
      y = F.layer_norm(x, (d,), self.ln1_scale, self.ln1_bias, eps=1e-6)
      y = F.dropout(F.gelu(y @ self.w0 + self.b0, approximate="tanh"), p, self.training)
      x = x + F.dropout(y @ self.w1 + self.b1, p, self.training)
      return x * mask

  class TorchSASRec(torch.nn.Module):

    def __init__(self):
      super().__init__()
      self.embedding = P(vocab_size, d)
      self.pos_embedding = P(max_len, d)
      self.blocks = torch.nn.ModuleList([Block() for _ in range(num_blocks)])
      self.final_scale, self.final_bias = P(d), P(d)

    def forward(self, seqs):
      """seqs int64[B, L] left-padded -> h float[B, L, d] (zero at padding)."""
      l = seqs.shape[1]
      mask = (seqs > 0).unsqueeze(-1).to(self.embedding.dtype)  # [B, L, 1]
      x = self.embedding[seqs] * mask * d**0.5 + self.pos_embedding[-l:]
      x = F.dropout(x, dropout if self.training else 0.0, self.training) * mask
      causal = torch.ones(l, l, dtype=torch.bool).tril()
      allowed = causal[None, None] & (seqs > 0)[:, None, None, :]  # [B, 1, L, L]
      attn_bias = torch.zeros(allowed.shape).masked_fill(~allowed, -1e9)
      for block in self.blocks:
        x = block(x, attn_bias, mask)
      return F.layer_norm(x, (d,), self.final_scale, self.final_bias, eps=1e-6) * mask

  return TorchSASRec()


# Flax parameter path -> TorchSASRec parameter name (per block: {i}).
_BLOCK_NAMES = {
    ("LayerNorm_0", "scale"): "ln0_scale", ("LayerNorm_0", "bias"): "ln0_bias",
    ("CausalSelfAttention_0", "qkv", "kernel"): "qkv",
    ("CausalSelfAttention_0", "out", "kernel"): "out_kernel",
    ("CausalSelfAttention_0", "out", "bias"): "out_bias",
    ("LayerNorm_1", "scale"): "ln1_scale", ("LayerNorm_1", "bias"): "ln1_bias",
    ("FeedForward_0", "Dense_0", "kernel"): "w0", ("FeedForward_0", "Dense_0", "bias"): "b0",
    ("FeedForward_0", "Dense_1", "kernel"): "w1", ("FeedForward_0", "Dense_1", "bias"): "b1",
}


def torch_name(path: tuple[str, ...]) -> str:
  """The TorchSASRec parameter name of a Flax SASRec parameter path."""
  if path == ("item_embed", "embedding"):
    return "embedding"
  if path == ("pos_embedding",):
    return "pos_embedding"
  if path[0] == "final_norm":
    return {"scale": "final_scale", "bias": "final_bias"}[path[1]]
  if path[0].startswith("block_"):
    return f"blocks.{path[0][len('block_'):]}.{_BLOCK_NAMES[path[1:]]}"
  raise KeyError(path)


def _flat(params) -> dict[tuple[str, ...], np.ndarray]:
  return {tuple(k.key for k in path): np.asarray(v)
          for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}


def copy_params(params, module) -> None:
  """Loads our Flax SASRec parameters into a TorchSASRec (every parameter, shapes checked)."""
  torch = _torch()
  named = dict(module.named_parameters())
  flat = _flat(params)
  assert len(flat) == len(named), (sorted(flat), sorted(named))
  with torch.no_grad():
    for path, value in flat.items():
      target = named[torch_name(path)]
      assert tuple(target.shape) == value.shape, (path, target.shape, value.shape)
      target.copy_(torch.from_numpy(np.array(value, np.float32)))


def torch_ce(module, inputs, targets, num_items: int, compact: bool):
  """Mean full-softmax CE over the positions with a target (ids 1..num_items compete)."""
  torch = _torch()
  F = torch.nn.functional
  h = module(inputs)  # [B, L, d]
  table = module.embedding
  invalid = torch.ones(table.shape[0], dtype=torch.bool)
  invalid[1:num_items + 1] = False
  if compact:
    keep = targets > 0
    logits = (h[keep] @ table.T).masked_fill(invalid, -1e30)  # [N_valid, V]
    return F.cross_entropy(logits, targets[keep])
  logits = (h @ table.T).masked_fill(invalid, -1e30)  # [B, L, V]
  return F.cross_entropy(logits.view(-1, table.shape[0]), targets.view(-1), ignore_index=0)


def torch_optimizer(module, train_config):
  """AdamW as make_optimizer: decay on weight matrices (ndim >= 2) except the embeddings."""
  torch = _torch()
  decay, no_decay = [], []
  for name, p in module.named_parameters():
    (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
  groups = [{"params": decay, "weight_decay": train_config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
  return torch.optim.AdamW(groups, lr=train_config.lr, betas=(0.9, train_config.b2), eps=1e-8,
                           foreach=True)


def torch_train_step(module, opt, inputs, targets, num_items: int, grad_clip: float,
                     compact: bool):
  opt.zero_grad(set_to_none=True)
  loss = torch_ce(module, inputs, targets, num_items, compact)
  loss.backward()
  if grad_clip > 0:
    _torch().nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
  opt.step()
  return loss


def torch_eval(module, data: SplitData, split: str, batch_size: int, num_items: int,
               ks=(10, 20), forward=None) -> dict[str, float]:
  """Full ranking with seen items masked, the rule of dpr_jax.eval.metrics (ties count against).

  ``forward``: what computes the hidden states (default ``module``; the bench passes the
  ``torch.compile``d module for the "compiled" variant); the item table is ``module``'s.
  """
  torch = _torch()
  forward = module if forward is None else forward
  module.eval()
  totals: dict[str, float] = {}
  count = 0.0
  v = module.embedding.shape[0]
  ids = torch.arange(v)
  valid = (ids >= 1) & (ids <= num_items)
  with torch.inference_mode():
    table = module.embedding
    for b in eval_batches(data, split, batch_size):
      inputs, targets = torch.from_numpy(b["inputs"]).long(), torch.from_numpy(b["targets"]).long()
      history, seen_len = torch.from_numpy(b["history"]).long(), torch.from_numpy(b["seen_len"])
      weight = torch.from_numpy(b["weight"])
      scores = forward(inputs)[:, -1] @ table.T  # [B, V]
      n = len(targets)
      hist = torch.where(torch.arange(history.shape[1])[None] < seen_len[:, None].long(), history, 0)
      seen = torch.zeros(n, v, dtype=torch.bool).scatter_(1, hist, True)
      seen[torch.arange(n), targets] = False
      target_scores = scores.gather(1, targets[:, None])
      ahead = (scores > target_scores) | ((scores == target_scores) & (ids[None] != targets[:, None]))
      for suffix, candidates in (("", valid[None] & ~seen), ("/unmasked", valid[None])):
        rank = (ahead & candidates).sum(1).float()
        for k in ks:
          hit = (rank < k).float()
          ndcg = hit / torch.log2(rank + 2.0)
          totals[f"recall@{k}{suffix}"] = totals.get(f"recall@{k}{suffix}", 0.0) + float((hit * weight).sum())
          totals[f"ndcg@{k}{suffix}"] = totals.get(f"ndcg@{k}{suffix}", 0.0) + float((ndcg * weight).sum())
      count += float(weight.sum())
  module.train()
  return {k: v_ / count for k, v_ in sorted(totals.items())} | {"users": int(count)}


# ============================================================================ ours
class Ours:
  """The project's own training step and evaluator, exactly as the trainer builds them."""

  def __init__(self, config, data: SplitData):
    self.mesh = sharding.make_mesh(1, 1, jax.devices()[:1])
    self.model = build_backbone(config.model, data.num_items, data.max_len)
    order = BatchOrder(data.num_users, config.train.batch_size, config.train.seed)
    self.tx = make_optimizer(config.train, order.steps_per_epoch)
    self.state, shardings = create_state(self.model, self.tx, self.mesh, config.train.seed,
                                         data.max_len)
    # The packing levels a full run of this config would use (dpr_jax.train.trainer).
    total = Schedule.from_config(config.train, order.steps_per_epoch).total
    self.row_length = packing.row_length_of(self.model, data.max_len)  # None: positions
    self.packed_steps, per_call = packing.for_run(
        config.train, data.train_inputs, data.train_targets, order, total,
        lambda capacity: jit_train_step(make_train_step(
            self.model, self.tx, data.num_items, config.train.seed, head_capacity=capacity),
            self.mesh, shardings), row_length=self.row_length)
    # Padded rows of that run, as a share of the rows its calls need (slots of first-fit rows
    # for SASRec; for the record: the benchmarked batch gets its own level, which may pad less
    # or more than the average).
    self.run_padding = (None if per_call is None else float(np.mean(
        [(self.packed_steps.capacity(n) - n) / n for n in per_call])))
    self.evaluate = backbone_evaluator(self.model, config, self.mesh, shardings.params,
                                       data.num_items)

  def loss_and_grads(self, inputs: np.ndarray, targets: np.ndarray, num_items: int):
    """Deterministic (dropout off) loss and parameter gradients on one batch."""
    from dpr_jax.train.loss import softmax_ce
    model = self.model

    def loss_fn(params):
      h = model.apply({"params": params}, inputs)
      return softmax_ce(h, model.apply({"params": params}, method=model.item_table), targets,
                        num_items)[0]

    return jax.jit(jax.value_and_grad(loss_fn))(self.state.params)


# ============================================================================ checks
def equivalence(ours: Ours, module, inputs: np.ndarray, targets: np.ndarray, num_items: int,
                compiled=None) -> dict:
  """Loss and gradients of ours and the peer (every variant: dense, compact and, given the
  ``torch.compile``d module, compiled) on the same weights and batch."""
  torch = _torch()
  loss, grads = ours.loss_and_grads(jnp.asarray(inputs), jnp.asarray(targets), num_items)
  flat_grads = _flat(grads)
  copy_params(ours.state.params, module)
  module.eval()  # dropout off
  out = {"loss_jax": float(loss)}
  variants = [("dense", module, False), ("compact", module, True)]
  if compiled is not None:
    variants.append(("compiled", compiled, True))
  for tag, runner, compact in variants:
    module.zero_grad(set_to_none=True)
    tl = torch_ce(runner, torch.from_numpy(inputs).long(), torch.from_numpy(targets).long(),
                  num_items, compact)
    tl.backward()
    named = dict(module.named_parameters())
    worst = 0.0
    for path, g in flat_grads.items():
      tg = named[torch_name(path)].grad.numpy()
      scale = max(float(np.abs(g).max()), 1e-12)
      worst = max(worst, float(np.abs(tg - g).max()) / scale)
    out[f"loss_torch_{tag}"] = tl.item()
    out[f"loss_rel_diff_{tag}"] = abs(tl.item() - float(loss)) / abs(float(loss))
    out[f"grad_max_rel_diff_{tag}"] = worst  # max |diff| / max |grad|, worst parameter
  module.zero_grad(set_to_none=True)
  module.train()
  return out


# ============================================================================ timing
def matmul_rate(n: int = 2048, reps: int = 5) -> float:
  """Dense float32 matmul FLOP/s of jax in this process (median of reps)."""
  a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
  f = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(f(a, a))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(f(a, a))
    times.append(time.perf_counter() - t0)
  return 2 * n**3 / statistics.median(times)


def model_flops(model_config, inputs: np.ndarray, scored: float, vocab: int,
                last_only: bool = False) -> float:
  """Forward matmul FLOPs of the work at real (non-padded) positions, the same for both sides.

  Per block: q/k/v and output projections 8 d^2 and feed-forward 4 d m per real position, and
  q.k plus weights.v 4 n^2 d per sequence of n real items; plus the catalogue product 2 V d for
  each of the ``scored`` vectors (supervised positions in training, one per user in ranking).
  Work an implementation spends on padding is not counted: it is what the floor fraction
  charges it for. ``last_only`` (ranking needs the last position's vector only): the last
  block counts its key/value projections 4 d^2 per real position, and the query, attention
  row 4 n d, output projection and feed-forward of the last position alone.

  Args:
    inputs: int[..., L] left-padded sequences (all those of the step or of the evaluation).
  """
  m = model_config
  n = np.sum(np.asarray(inputs) > 0, axis=-1).astype(np.float64)  # real items per sequence
  per_position = 8 * m.embed_dim**2 + 4 * m.embed_dim * m.mlp_dim
  d = m.embed_dim
  full = per_position * n.sum() + 4 * d * np.sum(n**2)  # one block over every real position
  if not last_only:
    return float(m.num_blocks * full + 2 * scored * vocab * d)
  last = 4 * d * d * n.sum() + np.sum(n > 0) * (4 * d * d + 4 * d * m.mlp_dim) + 4 * d * n.sum()
  return float((m.num_blocks - 1) * full + last + 2 * scored * vocab * d)


def _uptime() -> str:
  try:
    return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return os.getloadavg().__repr__()


def _median(xs):
  return statistics.median(xs) if xs else float("nan")


def run(args) -> dict:
  config = common.load_config_with_sets(args.config, args.set)
  torch = _torch()
  if config.model.name != "sasrec":
    raise ConfigError(f"--config {args.config}: the PyTorch peer is a SASRec; give a sasrec"
                      " preset")
  data, data_desc = load_data(config, args.synthetic)
  num_items, b, l = data.num_items, config.train.batch_size, data.max_len
  steps = args.steps or config.train.steps_per_call
  load_before = _uptime()
  print(f"data: {data_desc}: {data.num_users} users, {num_items} items, L={l}; "
        f"load: {load_before}", flush=True)

  # ---------------------------------------------------------------- batches (same for both)
  rng = np.random.default_rng(0)
  order = np.concatenate([rng.permutation(data.num_users) for _ in range(4)])
  idx = order[:steps * b].reshape(steps, b)
  inputs, targets = data.train_inputs[idx], data.train_targets[idx]  # [S, B, L]
  supervised = float((targets > 0).sum()) / steps
  print(f"batches: {steps} x {b}; supervised positions {supervised / (b * l):.1%} of B*L",
        flush=True)

  ours = Ours(config, data)
  m = config.model
  module = make_torch_sasrec(ours.model.vocab_size, l, m.embed_dim, m.num_blocks, m.num_heads,
                             m.mlp_dim, m.dropout)

  # ---------------------------------------------------------------- equivalence
  # torch.compile of the same module (parameters shared), trained with the compact loss.
  compiled = torch.compile(module) if "compiled" in args.peer_variants else None
  eq = equivalence(ours, module, inputs[0], targets[0], num_items, compiled)
  print("equivalence: " + ", ".join(f"{k}={v:.3g}" for k, v in eq.items()), flush=True)
  ok = all(eq[f"loss_rel_diff_{t}"] < 1e-5 and eq[f"grad_max_rel_diff_{t}"] < 1e-4
           for t in ("dense", "compact") + (("compiled",) if compiled is not None else ()))
  if not ok:
    raise SystemExit("equivalence check failed: the peer does not compute our loss")

  results = {"equivalence": eq}
  rates = [matmul_rate()]
  print(f"dense f32 matmul (jax, 2048^3): {rates[0] / 1e9:.1f} GFLOP/s", flush=True)

  # ---------------------------------------------------------------- training
  if not args.skip_train:
    jb = {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(targets)}
    tb = [(torch.from_numpy(inputs[i]).long(), torch.from_numpy(targets[i]).long())
          for i in range(steps)]
    opt = torch_optimizer(module, config.train)
    state = ours.state

    positions = packing.host_positions({"inputs": inputs}, ours.row_length)  # as the trainer

    def run_jax():
      nonlocal state
      t0 = time.perf_counter()
      state, metrics = ours.packed_steps(state, jb, positions)
      jax.block_until_ready(metrics["loss"])
      return time.perf_counter() - t0

    def run_torch(compact, runner=module):
      t0 = time.perf_counter()
      for x, y in tb:
        loss = torch_train_step(runner, opt, x, y, num_items, config.train.grad_clip, compact)
      loss.item()
      return time.perf_counter() - t0

    runners = {"jax": run_jax, "torch_dense": lambda: run_torch(False),
               "torch_compact": lambda: run_torch(True),
               "torch_compiled": lambda: run_torch(True, compiled)}
    runners = {k: v for k, v in runners.items() if k == "jax" or k[6:] in args.peer_variants}
    t0 = time.perf_counter()
    for fn in runners.values():  # compile / warm up
      fn()
    print(f"train warm-up (incl. compile) {time.perf_counter() - t0:.1f} s", flush=True)
    times = {k: [] for k in runners}
    for r in range(args.repeats):
      rates.append(matmul_rate(reps=3))
      for k, fn in runners.items():
        times[k].append(fn() / steps)
      print(f"  repeat {r}: " + ", ".join(f"{k} {v[-1]:.3f} s/step" for k, v in times.items()),
            flush=True)
    flops = 3 * model_flops(m, inputs, supervised * steps, ours.model.vocab_size) / steps
    rate = _median(rates)
    train = {"steps_per_repeat": steps, "compact_head": bool(config.train.compact_head),
             "packing_levels": list(ours.packed_steps.levels),
             "packed_capacity": ours.packed_steps.capacity(positions),
             "packed_positions": packing.host_positions({"inputs": inputs}),
             "packed_slots_needed": positions, "packed_row_length": ours.row_length,
             "run_mean_padding": ours.run_padding, "repeats": args.repeats, "batch": b,
             "max_len": l,
             "supervised_fraction": supervised / (b * l), "model_gflops_per_step": flops / 1e9,
             "s_per_step": {k: v for k, v in times.items()},
             "median_s_per_step": {k: _median(v) for k, v in times.items()}}
    for k in runners:
      med = _median(times[k])
      train[f"seq_per_s/{k}"] = b / med
      train[f"floor_fraction/{k}"] = flops / rate / med
      if k != "jax":
        train[f"speedup_vs_{k}"] = med / _median(times["jax"])
    # Every ratio is also quoted against the fastest PyTorch variant measured.
    train["best_torch"] = min((k for k in runners if k != "jax"), key=lambda k: _median(times[k]))
    train["speedup_vs_best_torch"] = train[f"speedup_vs_{train['best_torch']}"]
    results["train"] = train
    ours.state = state

  # ---------------------------------------------------------------- evaluation
  if not args.skip_eval:
    copy_params(ours.state.params, module)
    # The peer runs at each of its batch sizes and is compared at its fastest: smaller batches
    # also help torch on this CPU (fewer freshly mapped pages per call).
    peer_batches = args.peer_eval_batches or [config.eval.batch_size]
    runners = {"jax": lambda: ours.evaluate(ours.state.params, data, "test")}
    for eb in peer_batches:
      runners[f"torch@{eb}"] = (lambda eb=eb: torch_eval(module, data, "test", eb, num_items))
    if compiled is not None:  # the compiled variant ranks through the compiled forward too
      for eb in peer_batches:
        runners[f"torch_compiled@{eb}"] = (
            lambda eb=eb: torch_eval(module, data, "test", eb, num_items, forward=compiled))
    t0 = time.perf_counter()
    metrics = {k: fn() for k, fn in runners.items()}
    print(f"eval warm-up {time.perf_counter() - t0:.1f} s", flush=True)
    times = {k: [] for k in runners}
    for r in range(args.eval_repeats):
      rates.append(matmul_rate(reps=3))
      for k, fn in runners.items():
        t0 = time.perf_counter()
        metrics[k] = fn()
        times[k].append(time.perf_counter() - t0)
      print(f"  repeat {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
            flush=True)
    m_jax = metrics["jax"]
    best = min((k for k in runners if k != "jax"), key=lambda k: _median(times[k]))
    m_torch = metrics[best]
    diff = max(abs(m_jax[k] - other[k]) for other in metrics.values() for k in m_jax
               if k != "users")
    flops = model_flops(m, data.eval_split("test")[0], data.num_users, ours.model.vocab_size,
                        last_only=True)
    rate = _median(rates)
    median = {k: _median(v) for k, v in times.items()}
    results["eval"] = {
        "users": data.num_users, "batch_jax": ours.evaluate.batch_size,
        "chunk_jax": ours.evaluate.chunk, "peer_batches": peer_batches,
        "best_torch": best.split("@")[0], "batch_torch": int(best.split("@")[1]),
        "repeats": args.eval_repeats,
        "model_gflops": flops / 1e9, "s": times, "median_s": median,
        "speedup_vs_torch": median[best] / median["jax"],
        "speedup_vs": {k: median[k] / median["jax"] for k in runners if k != "jax"},
        "floor_fraction": {k: flops / rate / median[k] for k in runners},
        "metrics_jax": m_jax, "metrics_torch": m_torch, "metrics_max_abs_diff": diff}
    print(f"eval metrics: jax ndcg@10={m_jax['ndcg@10']:.5f}, torch ndcg@10="
          f"{m_torch['ndcg@10']:.5f}, max |diff| {diff:.2g}", flush=True)

  results["matmul_gflops"] = _median(rates) / 1e9
  results["matmul_gflops_all"] = [r / 1e9 for r in rates]
  results["fields"] = {
      "command": "python -m dpr_jax.bench peer " + " ".join(sys.argv[1:]),
      "config": args.config, "model": config.model.to_dict(), "data": data_desc,
      "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                 f"{os.cpu_count()} cpus", "cpu": report.cpu_model(),
      "device": report.device_description(), "jax": jax.__version__,
      "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else jax.__version__,
      "flax": _version("flax"), "optax": _version("optax"), "torch": torch.__version__,
      "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
      "ld_preload": os.environ.get("LD_PRELOAD", ""),
      "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""), "commit": report.git_commit(),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "uptime_before": load_before, "uptime_after": _uptime()}
  return results


def _version(name: str) -> str:
  try:
    return __import__(name).__version__
  except (ImportError, AttributeError):
    return "?"


def markdown(results: dict) -> str:
  f = results["fields"]
  lines = ["# dpr_jax vs PyTorch peer (SASRec)\n", f"`{f['command']}`\n",
           f"- machine: {f['machine']} ({f['cpu']}); {f['device']}; jax {f['jax']}, flax "
           f"{f['flax']}, torch {f['torch']} ({f['torch_threads']} threads), python {f['python']}",
           f"- LD_PRELOAD: `{f['ld_preload'] or '-'}`; GLIBC_TUNABLES: "
           f"`{f.get('glibc_tunables') or '-'}`; commit {f['commit']}; {f['date']}",
           f"- load before: `{f['uptime_before']}`; after: `{f['uptime_after']}`",
           f"- data: {f['data']}; model: d={f['model']['embed_dim']}, blocks "
           f"{f['model']['num_blocks']}, heads {f['model']['num_heads']}, mlp "
           f"{f['model']['mlp_dim']}, dropout {f['model']['dropout']}",
           f"- dense f32 matmul rate (jax, this process, median of {len(results['matmul_gflops_all'])}"
           f" measurements between the repeats): {results['matmul_gflops']:.1f} GFLOP/s (range "
           f"{min(results['matmul_gflops_all']):.1f}-{max(results['matmul_gflops_all']):.1f})",
           "- model FLOPs: matmuls at the real (non-padded) positions only, for ranking the last "
           "block at the last position only (peer.model_flops); floor fraction = model FLOPs / "
           "matmul rate / measured time",
           "- equivalence (dropout off, same weights and batch): " + ", ".join(
               f"{k} {v:.3g}" for k, v in results["equivalence"].items()), ""]
  if "train" in results:
    t = results["train"]
    lines += [f"## Training step (B={t['batch']}, L={t['max_len']}, supervised "
              f"{t['supervised_fraction']:.1%} of positions; {t['repeats']} interleaved repeats "
              f"of {t['steps_per_repeat']} steps; model {t['model_gflops_per_step']:.1f} "
              "GFLOP/step)\n",
              "| implementation | median s/step | seq/s | ours is x faster | floor fraction |",
              "|---|---|---|---|---|"]
    for k, med in t["median_s_per_step"].items():
      ratio = "1" if k == "jax" else f"{t[f'speedup_vs_{k}']:.2f}"
      lines.append(f"| {k} | {med:.3f} | {t[f'seq_per_s/{k}']:.1f} | {ratio} | "
                   f"{t[f'floor_fraction/{k}']:.1%} |")
    if "best_torch" in t:
      lines.append(f"\nAgainst the fastest PyTorch variant measured ({t['best_torch']}): "
                   f"**{t['speedup_vs_best_torch']:.2f}x**.")
    if t.get("packed_capacity"):
      rows = t.get("packed_row_length")
      need = (f"{t['packed_positions']:,} real positions (its fullest step)" if not rows else
              f"{t['packed_positions']:,} real positions (its fullest step; whole sequences in "
              f"{t['packed_slots_needed'] // rows} rows of {rows} by first fit)")
      lines.append(f"\nOurs packs the call's {need} into {t['packed_capacity']:,} slots, the "
                   f"level a full run of this config plans for it (levels {t['packing_levels']};"
                   f" over that run's calls the padding averages {t['run_mean_padding']:.1%} of "
                   f"the slots they need).")
    lines.append("")
  if "eval" in results:
    e = results["eval"]
    lines += [f"## Full-ranking evaluation ({e['users']} users, test split, seen masked; "
              f"{e['repeats']} interleaved repeats; model {e['model_gflops']:.1f} GFLOP)\n",
              "| implementation | batch | median s | users/s | ours is x faster | floor fraction |",
              "|---|---|---|---|---|---|"]
    for k, med in e["median_s"].items():
      ratio = "1" if k == "jax" else f"{e['speedup_vs'][k]:.2f}"
      batch = (f"{e['batch_jax']} (chunks of {e['chunk_jax'] or e['batch_jax']})" if k == "jax"
               else k.split("@")[1])
      lines.append(f"| {k.split('@')[0]} | {batch} | {med:.2f} | {e['users'] / med:.0f} | "
                   f"{ratio} | {e['floor_fraction'][k]:.1%} |")
    lines.append(f"\nOurs is **{e['speedup_vs_torch']:.2f}x** the peer at its fastest "
                 f"({e.get('best_torch', 'torch')}, batch {e['batch_torch']}).")
    lines.append(f"\nmetrics agree: max |diff| {e['metrics_max_abs_diff']:.2g} (NDCG@10 "
                 f"{e['metrics_jax']['ndcg@10']:.5f} vs {e['metrics_torch']['ndcg@10']:.5f})")
  return "\n".join(lines) + "\n"


def main() -> None:
  p = argparse.ArgumentParser(prog="python -m dpr_jax.bench peer")
  p.add_argument("--config", default=str(ROOT / "configs" / "ml1m_sasrec.py"))
  p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                 help="config overrides, e.g. model.embed_dim=64")
  p.add_argument("--steps", type=common.int_at_least(0), default=0,
                 help="optimizer steps per timed repeat, ours as one jit call (default: "
                      "train.steps_per_call, as the trainer calls it)")
  p.add_argument("--repeats", type=common.positive_int, default=5)
  p.add_argument("--eval-repeats", type=common.positive_int, default=3)
  p.add_argument("--peer-eval-batches", type=common.positive_int, nargs="+", default=[32, 64, 256],
                 help="the peer's evaluation batch sizes; it is compared at its fastest")
  p.add_argument("--peer-variants", nargs="+", default=["dense", "compact"],
                 choices=["dense", "compact", "compiled"])
  p.add_argument("--skip-train", action="store_true")
  p.add_argument("--skip-eval", action="store_true")
  p.add_argument("--synthetic", action="store_true", help="ML-1M-like synthetic data")
  p.add_argument("--tcmalloc", action="store_true",
                 help=f"re-run under LD_PRELOAD={TCMALLOC} (applies to both frameworks)")
  p.add_argument("--out", default=str(ROOT / "reports" / "bench_cpu"))
  p.add_argument("--name", default="peer", help="results file stem")
  args = p.parse_args()
  if args.tcmalloc and TCMALLOC not in os.environ.get("LD_PRELOAD", ""):
    if not os.path.exists(TCMALLOC):
      raise SystemExit(f"{TCMALLOC} not found (apt-get install libtcmalloc-minimal4)")
    env = dict(os.environ, LD_PRELOAD=TCMALLOC)
    os.execve(sys.executable, [sys.executable, "-m", "dpr_jax.bench", "peer"] + sys.argv[1:], env)
  results = run(args)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / f"{args.name}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
  (out / f"{args.name}.md").write_text(markdown(results))
  print(markdown(results))


if __name__ == "__main__":
  main()
