"""Tests of dpr_jax.data.synthetic."""

from __future__ import annotations

import numpy as np
import pytest

from dpr_jax.data.synthetic import make_synthetic
from dpr_jax.errors import ConfigError


def test_deterministic_given_seed():
  a, b, c = make_synthetic(seed=3), make_synthetic(seed=3), make_synthetic(seed=4)
  assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences))
  assert a.item_tags == b.item_tags
  assert any(not np.array_equal(x, y) for x, y in zip(a.sequences, c.sequences))


def test_shapes_ids_and_tags():
  data = make_synthetic(num_users=50, num_items=60, num_tags=5, min_len=4, max_len=9)
  assert data.num_users == 50 and data.num_items == 60
  assert data.user_ids[:2] == ["1", "2"] and data.item_ids[-1] == "60"
  assert data.item_titles[16] == "Item 17"
  assert data.tag_names == tuple(sorted(data.tag_names)) and len(data.tag_names) == 5
  assert all(1 <= len(tags) <= 2 for tags in data.item_tags)
  assert data.tag_matrix().shape == (61, 5)
  assert data.name == "synthetic" and data.source_files == ()
  for s in data.sequences:
    assert s.dtype == np.int32
    assert 4 <= len(s) <= 9
    assert s.min() >= 1 and s.max() <= 60
    assert len(np.unique(s)) == len(s)  # no repeats within a user


def test_many_tags_get_generated_names():
  data = make_synthetic(num_users=3, num_items=40, num_tags=20, min_len=2, max_len=3)
  assert len(data.tag_names) == 20 and "Tag19" in data.tag_names


def test_sequential_structure_beats_popularity():
  data = make_synthetic(seed=1)
  counts = np.bincount(np.concatenate(data.sequences), minlength=data.num_items + 1)
  top10 = np.argsort(-counts[1:])[:10] + 1
  pairs = [(p, x) for s in data.sequences for p, x in zip(s[:-1], s[1:])]
  next_after_prev = np.mean([(x - p) % data.num_items in range(1, 11) for p, x in pairs])
  popular = np.mean([x in top10 for _, x in pairs])
  assert next_after_prev > 2 * popular


def _early_late_distance(data) -> float:
  """Mean over users of the total-variation distance between tag mixes of the first and last
  thirds of the sequence."""
  m = data.tag_matrix()[1:].astype(float)
  m = np.vstack([np.zeros(m.shape[1]), m / m.sum(axis=1, keepdims=True)])
  distances = []
  for s in data.sequences:
    k = len(s) // 3
    distances.append(0.5 * np.abs(m[s[:k]].mean(0) - m[s[-k:]].mean(0)).sum())
  return float(np.mean(distances))


def test_tag_preferences_drift():
  kw = dict(num_users=300, num_items=600, min_len=30, max_len=40, seed=0)
  still = _early_late_distance(make_synthetic(drift=0.0, **kw))
  drifting = _early_late_distance(make_synthetic(drift=0.1, **kw))
  assert drifting > still + 0.03


@pytest.mark.parametrize("kw", [dict(max_len=200), dict(min_len=0), dict(num_tags=0),
                                dict(drift=1.5), dict(num_users=0)])
def test_rejects_impossible_settings(kw):
  with pytest.raises(ConfigError, match="synthetic data"):
    make_synthetic(**kw)
