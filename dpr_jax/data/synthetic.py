"""Synthetic tagged interaction data for tests and smoke runs (not real user behaviour).

Generative story (everything drawn from ``numpy.random.default_rng(seed)``):

1. Tags. ``num_tags`` genre-like names ("Action", "Comedy", ...; "Tag16", ... past the list),
   sorted; tag ``k`` is ``tag_names[k]``.
2. Items. Items 1..num_items are laid out on a ring in ``num_tags`` contiguous blocks: item
   ``i``'s first tag is ``(i - 1) * num_tags // num_items``. With probability
   ``second_tag_prob`` it also gets a second, uniformly drawn other tag. Each item has a
   Zipf-like popularity ``1 / rank**0.8`` over a random ranking.
3. Users. Each user draws a starting taste ``a`` and a later taste ``b``, both
   ``Dirichlet(0.3)`` over tags, and a length uniform in ``[min_len, max_len]``. At step ``t``
   the preference is ``p_t = (1 - w_t) a + w_t b`` with ``w_t = 1 - (1 - drift)**t``: it drifts
   slowly from ``a`` towards ``b``.
4. Next item. With probability ``follow_prob`` the user "continues the series": the next item
   is ``prev + k`` on the ring, ``k`` in 1, 2, 3 with probabilities 0.6, 0.3, 0.1 (items near
   each other share their block's tag). Otherwise, or when that item was already seen, a tag is
   drawn from ``p_t`` and the item among the unseen items with that tag, weighted by popularity
   (among all unseen items when the tag is used up). Items never repeat within a user.

Step 4 gives learnable sequential structure (a model that looks at the last item beats a
popularity ranking), step 3 gives within-sequence tag drift.
"""

from __future__ import annotations

import numpy as np

from dpr_jax.data.types import InteractionData
from dpr_jax.errors import ConfigError

GENRE_NAMES = ("Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama",
               "Fantasy", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
               "Western")
_FOLLOW_STEPS = np.array([1, 2, 3])
_FOLLOW_PROBS = np.array([0.6, 0.3, 0.1])
_TASTE_CONCENTRATION = 0.3  # Dirichlet parameter of user tastes: small = few favourite tags


def synthetic_tag_names(num_tags: int) -> tuple[str, ...]:
  """Sorted tag names: genre names first, then "Tag16", "Tag17", ..."""
  names = list(GENRE_NAMES[:num_tags]) + [f"Tag{k}" for k in range(len(GENRE_NAMES), num_tags)]
  return tuple(sorted(names))


def _check_args(num_users: int, num_items: int, num_tags: int, min_len: int, max_len: int,
                drift: float, follow_prob: float, second_tag_prob: float) -> None:
  problems = []
  if num_users < 1:
    problems.append(f"num_users={num_users} must be >= 1")
  if not 1 <= num_tags <= num_items:
    problems.append(f"num_tags={num_tags} must be in 1..num_items ({num_items})")
  if not 1 <= min_len <= max_len <= num_items:
    problems.append(f"need 1 <= min_len ({min_len}) <= max_len ({max_len}) <= num_items "
                    f"({num_items}): items do not repeat within a user")
  for label, value in (("drift", drift), ("follow_prob", follow_prob),
                       ("second_tag_prob", second_tag_prob)):
    if not 0.0 <= value <= 1.0:
      problems.append(f"{label}={value} must be in [0, 1]")
  if problems:
    raise ConfigError("synthetic data: " + "; ".join(problems))


def _item_tags(rng: np.random.Generator, num_items: int, num_tags: int,
               second_tag_prob: float) -> np.ndarray:
  """bool[num_items, num_tags]: contiguous blocks of first tags plus random second tags."""
  tags = np.zeros((num_items, num_tags), dtype=bool)
  first = np.arange(num_items) * num_tags // num_items
  tags[np.arange(num_items), first] = True
  if num_tags > 1:
    has_second = rng.random(num_items) < second_tag_prob
    offset = rng.integers(1, num_tags, size=num_items)  # any tag but the first
    second = (first + offset) % num_tags
    tags[np.flatnonzero(has_second), second[has_second]] = True
  return tags


def _popularity(rng: np.random.Generator, num_items: int) -> np.ndarray:
  """float64[num_items], Zipf-like weights over a random ranking, summing to 1."""
  ranks = rng.permutation(num_items) + 1
  weights = 1.0 / ranks**0.8
  return weights / weights.sum()


def _draw(rng: np.random.Generator, weights: np.ndarray) -> int:
  """An index drawn with probability proportional to ``weights`` (not all zero)."""
  cdf = np.cumsum(weights)
  index = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
  if index >= len(weights):  # rounding at the top end: take the last drawable index
    index = int(np.flatnonzero(weights)[-1])
  return index


def _draw_by_taste(rng: np.random.Generator, preference: np.ndarray, tags: np.ndarray,
                   popularity: np.ndarray, seen: np.ndarray) -> int:
  """Draws a tag from ``preference``, then an unseen item with that tag by popularity.

  Falls back to all unseen items by popularity when the tag has no unseen item left.
  Returns a 0-based item index.
  """
  tag = _draw(rng, preference)
  weights = np.where(tags[:, tag] & ~seen, popularity, 0.0)
  if not weights.any():
    weights = np.where(seen, 0.0, popularity)
  return _draw(rng, weights)


def _user_sequence(rng: np.random.Generator, length: int, tags: np.ndarray,
                   popularity: np.ndarray, drift: float, follow_prob: float) -> np.ndarray:
  """int32[length] of distinct internal item indices 1..num_items for one user.

  Args:
    rng: random source.
    length: sequence length (<= num_items).
    tags: bool[num_items, num_tags] item tags.
    popularity: float[num_items] item weights.
    drift: per-step fraction of the remaining move from the starting to the later taste.
    follow_prob: probability of continuing the series from the previous item.
  """
  num_items, num_tags = tags.shape
  start, end = rng.dirichlet(np.full(num_tags, _TASTE_CONCENTRATION), size=2)
  seen = np.zeros(num_items, dtype=bool)
  out = np.empty(length, dtype=np.int32)
  prev = -1
  for t in range(length):
    item = -1
    if prev >= 0 and rng.random() < follow_prob:
      step = _FOLLOW_STEPS[_draw(rng, _FOLLOW_PROBS)]
      candidate = (prev + step) % num_items
      if not seen[candidate]:
        item = int(candidate)
    if item < 0:
      w = 1.0 - (1.0 - drift)**t
      preference = (1.0 - w) * start + w * end
      item = _draw_by_taste(rng, preference, tags, popularity, seen)
    seen[item] = True
    out[t] = item + 1
    prev = item
  return out


def make_synthetic(num_users: int = 200, num_items: int = 100, num_tags: int = 6,
                   min_len: int = 8, max_len: int = 40, seed: int = 0, drift: float = 0.05,
                   follow_prob: float = 0.5, second_tag_prob: float = 0.35) -> InteractionData:
  """Builds a synthetic tagged dataset (see the module docstring for the generative story).

  Args:
    num_users: number of sequences.
    num_items: number of items; sequences use indices 1..num_items.
    num_tags: number of tags.
    min_len, max_len: inclusive range of sequence lengths (max_len <= num_items).
    seed: everything is a deterministic function of the arguments.
    drift: taste drift per step, in [0, 1]; 0 keeps each user's taste fixed.
    follow_prob: probability that the next item continues from the previous one.
    second_tag_prob: probability that an item has a second tag.

  Returns:
    InteractionData named "synthetic", with user ids "1".., item ids "1".., titles "Item <i>".
  """
  _check_args(num_users, num_items, num_tags, min_len, max_len, drift, follow_prob,
              second_tag_prob)
  rng = np.random.default_rng(seed)
  tag_names = synthetic_tag_names(num_tags)
  tags = _item_tags(rng, num_items, num_tags, second_tag_prob)
  popularity = _popularity(rng, num_items)
  lengths = rng.integers(min_len, max_len + 1, size=num_users)
  sequences = [
      _user_sequence(rng, int(n), tags, popularity, drift, follow_prob) for n in lengths
  ]
  return InteractionData(
      sequences=sequences,
      user_ids=[str(u) for u in range(1, num_users + 1)],
      item_ids=[str(i) for i in range(1, num_items + 1)],
      item_titles=[f"Item {i}" for i in range(1, num_items + 1)],
      item_tags=[tuple(tag_names[k] for k in np.flatnonzero(row)) for row in tags],
      tag_names=tag_names,
      source_files=(),
      name="synthetic",
  )
