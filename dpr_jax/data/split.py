"""Leave-one-out split and fixed-length padding (docs/protocol.md).

Per user with chronological items ``s_1 .. s_n`` (n >= 3):
  * test target ``s_n``, validation target ``s_{n-1}``, training part ``s_1 .. s_{n-2}``;
  * training examples: inputs ``s_1 .. s_{n-3}`` predicting ``s_2 .. s_{n-2}`` at every position
    (causal next-item objective), the last ``max_len`` positions kept;
  * validation input ``s_1 .. s_{n-2}``, test input ``s_1 .. s_{n-1}`` (last ``max_len`` items).
All sequences are left-padded with 0 so the last column is the most recent item.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dpr_jax.data.types import InteractionData
from dpr_jax.errors import DataError

MIN_INTERACTIONS = 3


@dataclasses.dataclass(frozen=True)
class SplitData:
  """The preprocessed dataset: everything training and evaluation need, as arrays.

  U users, L = max_len, H = longest history, N items, T tags.
  """

  train_inputs: np.ndarray  # int32[U, L]
  train_targets: np.ndarray  # int32[U, L]; 0 where there is no target (padding)
  valid_inputs: np.ndarray  # int32[U, L]
  valid_targets: np.ndarray  # int32[U]
  test_inputs: np.ndarray  # int32[U, L]
  test_targets: np.ndarray  # int32[U]
  history: np.ndarray  # int32[U, H]: s_1 .. s_{n-1} right-padded (seen items for masking)
  history_len: np.ndarray  # int32[U]: n - 1
  item_tags: np.ndarray  # bool[N + 1, T]; row 0 is padding
  num_items: int
  tag_names: tuple[str, ...]
  item_titles: tuple[str, ...]
  item_ids: tuple[str, ...]
  user_ids: tuple[str, ...]
  manifest: dict = dataclasses.field(default_factory=dict, compare=False)

  ARRAY_FIELDS = ("train_inputs", "train_targets", "valid_inputs", "valid_targets",
                  "test_inputs", "test_targets", "history", "history_len", "item_tags")

  @property
  def num_users(self) -> int:
    return int(self.train_inputs.shape[0])

  @property
  def max_len(self) -> int:
    return int(self.train_inputs.shape[1])

  def eval_split(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs int32[U, L], targets int32[U], seen_len int32[U]) of "valid" or "test".

    ``history[u, :seen_len[u]]`` are the items seen before the target.
    """
    if split == "valid":
      return self.valid_inputs, self.valid_targets, self.history_len - 1
    if split == "test":
      return self.test_inputs, self.test_targets, self.history_len
    raise ValueError(f"split must be 'valid' or 'test', got {split!r}")


def _left_pad(seq: np.ndarray, length: int) -> np.ndarray:
  out = np.zeros(length, np.int32)
  seq = seq[-length:]
  if len(seq):
    out[-len(seq):] = seq
  return out


def leave_one_out(data: InteractionData, max_len: int) -> SplitData:
  """Splits ``data`` per docs/protocol.md; raises DataError for users too short to split."""
  short = [i for i, seq in enumerate(data.sequences) if len(seq) < MIN_INTERACTIONS]
  if short:
    where = data.source_files[0] if data.source_files else data.name
    i = short[0]
    others = f" (and {len(short) - 1} more user(s))" if len(short) > 1 else ""
    raise DataError(
        f"{where}: user {data.user_ids[i]} has {len(data.sequences[i])} interaction(s){others};"
        f" leave-one-out needs at least {MIN_INTERACTIONS} per user (train, validation and test"
        f" item): remove such users")
  u = data.num_users
  hist_width = max(len(s) for s in data.sequences) - 1
  arrays = {
      "train_inputs": np.zeros((u, max_len), np.int32),
      "train_targets": np.zeros((u, max_len), np.int32),
      "valid_inputs": np.zeros((u, max_len), np.int32),
      "valid_targets": np.zeros(u, np.int32),
      "test_inputs": np.zeros((u, max_len), np.int32),
      "test_targets": np.zeros(u, np.int32),
      "history": np.zeros((u, hist_width), np.int32),
      "history_len": np.zeros(u, np.int32),
  }
  for i, seq in enumerate(data.sequences):
    seq = np.asarray(seq, np.int32)
    train = seq[:-2]
    arrays["train_inputs"][i] = _left_pad(train[:-1], max_len)
    arrays["train_targets"][i] = _left_pad(train[1:], max_len)
    arrays["valid_inputs"][i] = _left_pad(train, max_len)
    arrays["valid_targets"][i] = seq[-2]
    arrays["test_inputs"][i] = _left_pad(seq[:-1], max_len)
    arrays["test_targets"][i] = seq[-1]
    arrays["history"][i, :len(seq) - 1] = seq[:-1]
    arrays["history_len"][i] = len(seq) - 1
  return SplitData(
      **arrays, item_tags=data.tag_matrix(), num_items=data.num_items,
      tag_names=tuple(data.tag_names), item_titles=tuple(data.item_titles),
      item_ids=tuple(data.item_ids), user_ids=tuple(data.user_ids))
