"""The in-memory form of an interaction dataset, shared by every loader."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class InteractionData:
  """Chronological interactions with items re-indexed to 1..num_items (0 is padding).

  Attributes:
    sequences: one int32 array per user, item indices in chronological order.
    user_ids: original user id of each sequence (same order as ``sequences``).
    item_ids: original item id of internal item ``i`` at position ``i - 1``; length num_items.
    item_titles: display title of internal item ``i`` at ``i - 1`` ("" when unknown).
    item_tags: tags (e.g. genres) of internal item ``i`` at ``i - 1``.
    tag_names: sorted tuple of all tag names.
    source_files: absolute paths of the files read (recorded, with sha256, in the manifest).
    name: short dataset name for reports, e.g. "ml-1m".
  """

  sequences: list[np.ndarray]
  user_ids: list[str]
  item_ids: list[str]
  item_titles: list[str]
  item_tags: list[tuple[str, ...]]
  tag_names: tuple[str, ...]
  source_files: tuple[str, ...]
  name: str

  @property
  def num_items(self) -> int:
    return len(self.item_ids)

  @property
  def num_users(self) -> int:
    return len(self.sequences)

  def tag_matrix(self) -> np.ndarray:
    """Multi-hot tags, bool[num_items + 1, num_tags]; row 0 (padding) is all False."""
    index = {t: j for j, t in enumerate(self.tag_names)}
    m = np.zeros((self.num_items + 1, len(self.tag_names)), dtype=bool)
    for i, tags in enumerate(self.item_tags, start=1):
      for t in tags:
        m[i, index[t]] = True
    return m
