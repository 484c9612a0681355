"""Leave-one-out split, padding and the preprocessing cache."""

import json

import numpy as np
import pytest

from dpr_jax.data.prepare import prepare
from dpr_jax.data.split import leave_one_out
from dpr_jax.data.types import InteractionData
from dpr_jax.errors import DataError


def _data(seqs):
  n = max(max(s) for s in seqs)
  return InteractionData(
      sequences=[np.asarray(s, np.int32) for s in seqs], user_ids=[f"u{i}" for i in range(len(seqs))],
      item_ids=[str(i) for i in range(1, n + 1)], item_titles=[""] * n,
      item_tags=[("a",) if i % 2 else ("b",) for i in range(1, n + 1)], tag_names=("a", "b"),
      source_files=(), name="hand")


def test_leave_one_out_by_hand():
  split = leave_one_out(_data([[1, 2, 3, 4, 5, 6], [7, 8, 9]]), max_len=4)
  # A 3-item user has a 1-item training part: no (input, target) pair, so no training row.
  np.testing.assert_array_equal(split.train_inputs, [[0, 1, 2, 3], [0, 0, 0, 0]])
  np.testing.assert_array_equal(split.train_targets, [[0, 2, 3, 4], [0, 0, 0, 0]])
  np.testing.assert_array_equal(split.valid_inputs, [[1, 2, 3, 4], [0, 0, 0, 7]])
  np.testing.assert_array_equal(split.valid_targets, [5, 8])
  np.testing.assert_array_equal(split.test_inputs, [[2, 3, 4, 5], [0, 0, 7, 8]])
  np.testing.assert_array_equal(split.test_targets, [6, 9])
  # Seen items for masking: the whole history, also beyond max_len.
  np.testing.assert_array_equal(split.history, [[1, 2, 3, 4, 5], [7, 8, 0, 0, 0]])
  np.testing.assert_array_equal(split.history_len, [5, 2])
  inputs, targets, seen_len = split.eval_split("valid")
  np.testing.assert_array_equal(seen_len, [4, 1])
  assert split.item_tags.shape == (10, 2) and not split.item_tags[0].any()


def test_users_too_short_to_split_are_refused():
  with pytest.raises(DataError, match="user u1 has 2 interaction"):
    leave_one_out(_data([[1, 2, 3], [4, 5]]), max_len=4)


def test_cache_is_reused_and_stale_cache_rebuilt(tmp_path, tiny_config):
  c = tiny_config()
  src = tmp_path / "inter.csv"
  src.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(4) for i in range(u, u + 5)))
  c.data.format, c.data.dir, c.data.interactions_file, c.data.name = "csv", str(tmp_path), "inter.csv", "t"
  first = prepare(c.data)
  cache = next((tmp_path / "cache").iterdir())
  manifest = json.loads((cache / "manifest.json").read_text())
  assert manifest["sources"][0]["path"] == str(src) and len(manifest["sources"][0]["sha256"]) == 64
  assert manifest["max_len"] == c.data.max_len
  mtime = (cache / "arrays.npz").stat().st_mtime_ns
  again = prepare(c.data)
  assert (cache / "arrays.npz").stat().st_mtime_ns == mtime  # reused, not rebuilt
  np.testing.assert_array_equal(first.test_targets, again.test_targets)
  src.write_text(src.read_text() + "0,99\n")  # the source changes: the cache is stale
  rebuilt = prepare(c.data)
  assert rebuilt.num_items == first.num_items + 1
