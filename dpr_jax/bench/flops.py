"""Analytic model FLOPs (matrix products only, 2 FLOPs per multiply-add) of the benchmarked
programs, for the fraction-of-floor numbers.

Conventions:
  * Only contractions are counted (dense layers, attention, GRU gates, catalogue products);
    elementwise work (softmax, layer norm, gelu, Adam) is left out: it is a few percent at the
    benchmarked shapes and runs at memory speed, not matmul speed.
  * Training = 3 x forward (the backward of a product costs two products). Recomputation is
    *not* counted: the tiled cross-entropy computes the logits a second time in its backward,
    so it executes 4/3 of the loss FLOPs counted here; the fraction of the floor is then the
    useful work over the floor.
  * Computed work is counted as executed: causal attention computes the full L x L scores, and
    the catalogue product covers every row of the padded table V.

``tests/test_bench.py`` checks these counts against XLA's ``cost_analysis()`` on small shapes.
"""

from __future__ import annotations


def sasrec_forward(batch: int, length: int, vocab: int, d: int, num_blocks: int, mlp_dim: int,
                   score_positions: int | None = None, last_only: bool = False) -> float:
  """SASRec forward on int[B, L] plus the catalogue product of ``score_positions`` vectors.

  Per block: qkv 6Nd^2, scores + weighted sum 4 B L^2 d, output projection 2Nd^2, feed-forward
  4 N d m (N = B L). Catalogue: 2 P V d with P = score_positions (default N).
  ``last_only`` (``SASRec.user_vector``): the last block queries from the last position only,
  so it costs keys and values 4Nd^2, the query 2Bd^2, scores + weighted sum 4 B L d, output
  projection 2 B d^2 and feed-forward 4 B d m.
  """
  n = batch * length
  p = n if score_positions is None else score_positions
  block = 8 * n * d * d + 4 * batch * length * length * d + 4 * n * d * mlp_dim
  if not last_only:
    return float(num_blocks * block + 2 * p * vocab * d)
  last = 4 * n * d * d + 4 * batch * length * d + 4 * batch * d * d + 4 * batch * d * mlp_dim
  return float((num_blocks - 1) * block + last + 2 * p * vocab * d)


def gru4rec_forward(batch: int, length: int, vocab: int, d: int, gru_dim: int,
                    score_positions: int | None = None, last_only: bool = False) -> float:
  """GRU4Rec forward: per position input gates 6 d g, recurrent gates 6 g^2, projection 2 g d;
  plus the catalogue product 2 P V d. ``last_only`` (``GRU4Rec.user_vector``): the projection
  at the last position only, 2 B g d."""
  n = batch * length
  p = n if score_positions is None else score_positions
  g = gru_dim
  projected = batch if last_only else n
  return float(n * (6 * d * g + 6 * g * g) + projected * 2 * g * d + 2 * p * vocab * d)


def backbone_forward(model_config, batch: int, length: int, vocab: int,
                     score_positions: int | None = None, last_only: bool = False) -> float:
  m = model_config
  if m.name == "sasrec":
    return sasrec_forward(batch, length, vocab, m.embed_dim, m.num_blocks, m.mlp_dim,
                          score_positions, last_only)
  return gru4rec_forward(batch, length, vocab, m.embed_dim, m.gru_dim, score_positions,
                         last_only)


def backbone_train_step(model_config, batch: int, length: int, vocab: int) -> float:
  """One stage-1 training step: 3 x (forward + full-catalogue logits at every position)."""
  return 3.0 * backbone_forward(model_config, batch, length, vocab)


def full_ranking_eval(model_config, batch: int, length: int, vocab: int) -> float:
  """One evaluation batch: the user vectors (``user_vector``: SASRec's last block, GRU4Rec's
  projection, for the last position only), then one [B, d] x [d, V]."""
  return backbone_forward(model_config, batch, length, vocab, score_positions=batch,
                          last_only=True)


def dpr_head_forward(batch: int, d: int, num_tags: int, prompt_dim: int, adapter_hidden: int,
                     num_experts: int, experts_run: int, expert_hidden: int) -> float:
  """DPR head on B user vectors: adapter, router, ``experts_run`` experts per example (E for the
  dense dispatch, K for the grouped one) on x = [h, a, h*a]."""
  adapter = 2 * batch * (prompt_dim * adapter_hidden + adapter_hidden * d)
  router = 2 * batch * (prompt_dim + d) * num_experts
  experts = 2 * batch * experts_run * (3 * d * expert_hidden + expert_hidden * (d + num_tags))
  return float(adapter + router + experts)


def dpr_stage3_step(batch: int, d: int, num_tags: int, vocab: int, prompt_dim: int,
                    adapter_hidden: int, num_experts: int, experts_run: int,
                    expert_hidden: int) -> float:
  """One stage-3 step (dpr_jax/train/steering.py): 3 x (head + scores over [E, tags] of every
  row + the tag-membership product of the tag-mass loss)."""
  head = dpr_head_forward(batch, d, num_tags, prompt_dim, adapter_hidden, num_experts,
                          experts_run, expert_hidden)
  scores = 2 * batch * vocab * (d + num_tags)
  tag_mass = 2 * batch * num_tags * vocab
  return 3.0 * (head + scores + tag_mass)


def moe_forward(batch: int, din: int, hidden: int, dout: int, experts_run: int) -> float:
  """SparseMoE forward with ``experts_run`` experts evaluated per example."""
  return float(2 * batch * experts_run * (din * hidden + hidden * dout))
