"""Rank metrics and full-ranking evaluation against a brute-force numpy reference (sorting)."""

import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax.eval.metrics import metrics_at_k, target_rank
from dpr_jax.eval.ranking import rank_metrics, seen_mask


def reference(scores, targets, history, seen_len, num_items, ks, masked):
  """Sorts every user's catalogue: NDCG/Recall@k by position of the target in the ranked list."""
  out = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg")}
  for b in range(scores.shape[0]):
    cand = [i for i in range(1, num_items + 1)
            if not (masked and i in set(history[b, :seen_len[b]]) and i != targets[b])]
    ranked = sorted(cand, key=lambda i: -scores[b, i])
    pos = ranked.index(targets[b])
    for k in ks:
      out[f"recall@{k}"].append(float(pos < k))
      out[f"ndcg@{k}"].append(1 / np.log2(pos + 2) if pos < k else 0.0)
  return {k: float(np.sum(v)) for k, v in out.items()}


@pytest.mark.parametrize("masked", [True, False])
def test_rank_metrics_match_sorting_reference(masked):
  rng = np.random.default_rng(0)
  b, num_items, vocab, h = 64, 300, 320, 40
  scores = rng.normal(size=(b, vocab)).astype(np.float32)
  targets = rng.integers(1, num_items + 1, size=b)
  history = rng.integers(1, num_items + 1, size=(b, h)).astype(np.int32)
  seen_len = rng.integers(0, h, size=b).astype(np.int32)
  history[np.arange(h)[None, :] >= seen_len[:, None]] = 0
  history[0, 0], seen_len[0] = targets[0], max(seen_len[0], 1)  # a seen target stays rankable
  # Padding rows and ids > num_items score highest: they must never count.
  scores[:, 0] = scores[:, num_items + 1:] = 100.0
  seen = seen_mask(jnp.asarray(history), jnp.asarray(seen_len), jnp.asarray(targets), vocab)
  weight = jnp.ones(b)
  got = rank_metrics(jnp.asarray(scores), jnp.asarray(targets), seen, weight, num_items, (10, 20))
  want = reference(scores, targets, history, seen_len, num_items, (10, 20), masked)
  suffix = "" if masked else "/unmasked"
  for k, v in want.items():
    np.testing.assert_allclose(float(got[k + suffix]), v, rtol=1e-5, err_msg=k)
  assert float(got["count"]) == b


def test_ties_count_against_the_target():
  scores = jnp.zeros((1, 6))
  rank = target_rank(scores, jnp.array([3]), jnp.ones((1, 6), bool))
  assert int(rank[0]) == 5  # all 5 competitors tie with it: worst rank, not best


def test_ndcg_values():
  m = metrics_at_k(jnp.array([0, 1, 9, 10]), (10,))
  np.testing.assert_allclose(m["ndcg@10"], [1.0, 1 / np.log2(3), 1 / np.log2(11), 0.0], rtol=1e-6)
  np.testing.assert_array_equal(m["recall@10"], [1, 1, 1, 0])
