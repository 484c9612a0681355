"""The host-side packing plan: per-call counts, capacity levels and the step dispatch."""

from __future__ import annotations

import numpy as np
import pytest

from dpr_jax.data.pipeline import BatchOrder
from dpr_jax.train import packing


def _left_padded(lengths, max_len):
  inputs = np.zeros((len(lengths), max_len), np.int32)
  for u, n in enumerate(lengths):
    inputs[u, max_len - n:] = np.arange(1, n + 1)
  targets = np.zeros_like(inputs)  # next-item targets: one at every real input
  targets[:, :-1] = inputs[:, 1:] * (inputs[:, :-1] > 0)
  targets[:, -1] = 7
  return inputs, targets


def test_call_positions_matches_a_loop_over_the_batches():
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 30, 101)
  order = BatchOrder(101, 8, seed=3)
  got = packing.call_positions(lengths, order, 6, 36, steps_per_call=3)
  want = [max(int(lengths[order.indices(s, 1)[0]].sum()) for s in range(c, c + 3))
          for c in range(6, 42, 3)]
  assert got.tolist() == want
  with pytest.raises(ValueError):
    packing.call_positions(lengths, order, 0, 10, steps_per_call=3)


def _first_fit_loop(sizes, capacity):
  """First-fit decreasing, one bin at a time (the reference)."""
  bins = []
  for x in sorted(sizes, reverse=True):
    for i, used in enumerate(bins):
      if used + x <= capacity:
        bins[i] += x
        break
    else:
      bins.append(x)
  return len(bins)


def test_first_fit_rows_matches_a_loop():
  rng = np.random.default_rng(1)
  lengths = np.minimum(rng.geometric(0.03, size=(50, 16)), 40)  # skewed, some at the cap
  got = packing.first_fit_rows(lengths, 40)
  assert got.tolist() == [_first_fit_loop(row, 40) for row in lengths]
  assert np.all(got >= np.ceil(lengths.sum(1) / 40))  # never below the positions' own need
  assert packing.first_fit_rows(np.full((1, 5), 40), 40).tolist() == [5]


def test_call_positions_in_rows_counts_first_fit_rows():
  rng = np.random.default_rng(2)
  lengths = rng.integers(1, 21, 64)
  order = BatchOrder(64, 8, seed=0)
  got = packing.call_positions(lengths, order, 0, 8, steps_per_call=2, row_length=20)
  want = [20 * max(_first_fit_loop(lengths[order.indices(s, 1)[0]], 20) for s in (c, c + 1))
          for c in range(0, 8, 2)]
  assert got.tolist() == want
  inputs, targets = _left_padded(lengths, 20)
  per_call, levels = packing.plan(inputs, targets, order, 8, 2, num_levels=2, row_length=20)
  assert per_call.tolist() == want and all(v % 20 == 0 for v in levels)
  assert levels[-1] == max(want)


def test_real_lengths_refuses_targets_at_padding():
  inputs, targets = _left_padded([3, 5, 1], 6)
  assert packing.real_lengths(inputs, targets).tolist() == [3, 5, 1]
  targets[0, 0] = 4  # a target where the input is padding: packing would drop it
  assert packing.real_lengths(inputs, targets) is None


def test_capacity_levels_cover_every_call_and_waste_less_than_one_level():
  rng = np.random.default_rng(1)
  per_call = rng.normal(13_700, 900, 2000).astype(int)
  levels = packing.capacity_levels(per_call, 4, 256, limit=25_600)
  assert len(levels) <= 4 and list(levels) == sorted(set(levels))
  assert all(c % 256 == 0 for c in levels) and levels[-1] >= per_call.max()
  steps = packing.TrainSteps(lambda c: None, levels)
  chosen = np.array([steps.capacity(int(n)) for n in per_call])
  assert np.all(chosen >= per_call)
  one_level = packing.capacity_levels(per_call, 1, 256, limit=25_600)
  assert one_level == (levels[-1],)
  assert (chosen - per_call).mean() < 0.5 * (one_level[0] - per_call).mean()
  # Capped at the limit (B * L), where packing saves nothing.
  assert packing.capacity_levels([30, 40], 2, 256, limit=50) == (50,)
  assert packing.capacity_levels([], 3, 8, limit=50) == ()
  with pytest.raises(ValueError):
    packing.capacity_levels([1], 0, 8, limit=50)


def test_capacity_levels_are_the_best_subset():
  import itertools
  rng = np.random.default_rng(2)
  for trial in range(20):
    per_call = rng.integers(1, 120, rng.integers(1, 30))
    k = int(rng.integers(1, 5))
    levels = packing.capacity_levels(per_call, k, 8, limit=100)
    rounded = np.minimum(100, -(-per_call // 8) * 8)
    cost = lambda lv: sum(min(x for x in lv if x >= c) for c in rounded)
    values = sorted(set(rounded.tolist()))
    best = min(cost(sub + (values[-1],))
               for r in range(min(k, len(values)))
               for sub in itertools.combinations(values[:-1], r))
    assert levels[-1] == values[-1] and len(levels) <= k
    assert cost(levels) == best, (per_call, k, levels)


def test_train_steps_compiles_each_level_once_and_falls_back_to_dense():
  made = []

  def compile_step(capacity):
    made.append(capacity)
    return lambda state, batch: (state + 1, capacity)

  steps = packing.TrainSteps(compile_step, (512, 256))
  assert steps.levels == (256, 512)
  results = [steps(0, None, n)[1] for n in (10, 256, 257, 300, 512, 513, 20)]
  assert results == [256, 256, 512, 512, 512, None, 256]
  assert made == [256, 512, None]  # lazily, once each
  assert packing.TrainSteps(compile_step, ())(0, None, 1)[1] is None


def test_plan_is_off_without_real_lengths():
  inputs, targets = _left_padded([3, 5, 1, 4], 6)
  order = BatchOrder(4, 2, seed=0)
  per_call, levels = packing.plan(inputs, targets, order, 4, 2, num_levels=2, multiple=4)
  assert per_call.shape == (2,) and levels[-1] >= per_call.max()
  targets[0, 0] = 1
  assert packing.plan(inputs, targets, order, 4, 2, num_levels=2) == (None, ())


def test_automatic_levels_by_backend_and_an_explicit_setting_wins():
  assert packing.num_levels(0, "cpu") == 4
  assert packing.num_levels(0, "gpu") == packing.num_levels(0, "tpu") == 1
  assert packing.num_levels(3, "gpu") == 3 and packing.num_levels(1, "cpu") == 1
  # The trainer's path: a run with the default (automatic) setting on this CPU plans 4 levels.
  from dpr_jax.config import default_config

  lengths = np.random.default_rng(0).integers(1, 41, size=512)
  inputs, targets = _left_padded(list(lengths), 40)
  train = default_config().train
  assert train.packing_levels == 0
  steps, per_call = packing.for_run(train, inputs, targets, BatchOrder(512, 16, seed=0), 320,
                                    lambda capacity: None, row_length=40)
  assert len(set(per_call)) > 4 and len(steps.levels) == 4


def test_balanced_groups_keep_the_batch_and_even_out_the_shards():
  from dpr_jax.data.pipeline import balance_groups

  rng = np.random.default_rng(0)
  lengths = np.clip(np.exp(rng.normal(np.log(96), 1.04, 2000)), 18, 200).astype(int)
  index = np.stack([rng.permutation(2000)[:64] for _ in range(30)])
  balanced = balance_groups(index, lengths, 8)
  assert np.array_equal(np.sort(balanced, axis=1), np.sort(index, axis=1))  # same examples
  assert np.array_equal(balance_groups(index, lengths, 1), index)
  rows = lambda idx: packing.group_rows(lengths[idx], 200, groups=8)
  assert rows(balanced).mean() < rows(index).mean()  # fewer rows than consecutive blocks
  assert rows(balanced).mean() <= 1.15 * packing.group_rows(lengths[index], 200, 1).mean()
  sums = lengths[balanced].reshape(30, 8, 8).sum(axis=2)
  assert np.all(sums.max(axis=1) - sums.min(axis=1) <= lengths.max())


def test_group_counts():
  lengths = np.array([[10, 3, 9, 2, 8, 1]])  # groups of 3 consecutive: (10, 3, 9), (2, 8, 1)
  assert packing.group_rows(lengths, 12, groups=1)[0] == 3  # [10, 2], [9, 3], [8, 1]
  assert packing.group_rows(lengths, 12, groups=2)[0] == 2 * 2  # (10), (3, 9) | (2, 8, 1)
  order = BatchOrder(6, 6, seed=0)
  got = packing.call_positions(lengths[0], order, 0, 1, 1, groups=2)
  assert got[0] == 2 * max(sum(lengths[0][order.indices(0, 1)[0][:3]]),
                           sum(lengths[0][order.indices(0, 1)[0][3:]]))
