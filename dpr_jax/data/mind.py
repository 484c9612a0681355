"""Reader for MIND (Microsoft News Dataset) click logs.

Each MIND split folder holds two tab-separated UTF-8 files without a header (plain or gzip):

* ``news.tsv``: ``NewsID  Category  SubCategory  Title  Abstract  URL  TitleEntities
  AbstractEntities`` (8 fields; only the first four are used). Example row:
  ``N16278  sports  more_sports  Silver Spring Man Nabs Title ...  ...``.
* ``behaviors.tsv``: ``ImpressionID  UserID  Time  History  Impressions`` (5 fields). ``Time`` is
  ``11/11/2019 9:05:58 AM`` (``%m/%d/%Y %I:%M:%S %p``); ``History`` lists the user's earlier
  clicks, oldest first, separated by spaces (may be empty); ``Impressions`` lists the shown news
  as ``NewsID-1`` (clicked) or ``NewsID-0`` (not clicked).

``directory`` either holds both files itself or holds one folder per split, named as MIND-small
unzips (``MINDsmall_train``, ``MINDsmall_dev``), as MIND-large does (``MINDlarge_train``,
``MINDlarge_dev``), or just ``train`` / ``dev``.

A user's sequence is the history of their earliest impression, followed by the news they clicked,
in impression-time order (ties: split order, then line order), with repeats removed (the first
occurrence stays). Entries naming news absent from every ``news.tsv`` read are dropped, and their
count is reported by one warning. Users left with fewer than :data:`MIN_ITEMS` items are dropped
(MIND is sparse: many users click once or twice, too few for a leave-one-out split with a training
part). Items are the news occurring in the kept sequences, indexed 1..N in natural NewsID order
(``N2 < N123 < N1234``); their tag is the news category, their title the Title column.

Every malformed input raises :class:`DataError` with a one-line message of the form
``<path>:<line>: <what is wrong>`` (1-based physical lines).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dpr_jax.data import formats
from dpr_jax.data.types import InteractionData
from dpr_jax.errors import ConfigError, DataError

MIN_ITEMS = 3  # Users with fewer items (after cleaning) are dropped.
SPLITS = ("train", "dev")
NEWS_FILE = "news.tsv"
BEHAVIORS_FILE = "behaviors.tsv"
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
DOWNLOAD_HINT = ("download MIND-small (MINDsmall_train.zip, MINDsmall_dev.zip) from "
                 "https://msnews.github.io/ and unzip it into $DPR_DATA_DIR or --config.data.dir")

_NEWS_FIELDS = ("NewsID", "Category", "SubCategory", "Title", "Abstract", "URL", "TitleEntities",
                "AbstractEntities")
_BEHAVIOR_FIELDS = ("ImpressionID", "UserID", "Time", "History", "Impressions")
_DIGITS = re.compile(r"([0-9]+)")


@dataclasses.dataclass(frozen=True)
class MindNews:
  """One row of news.tsv (the fields the recommender uses)."""

  category: str
  subcategory: str
  title: str


def natural_key(news_id: str) -> tuple:
  """Sort key comparing digit runs as numbers: ``N2 < N123 < N1234``; ties by the raw string."""
  parts = _DIGITS.split(news_id)
  return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), news_id


# ----------------------------------------------------------------------------------------------
# Locating the files.


def split_dirs(directory: str | os.PathLike, splits: Sequence[str] = ("train",)) -> list[Path]:
  """The folders holding news.tsv and behaviors.tsv for ``splits``, in that order.

  When ``directory`` holds the two files itself it is the only folder (``splits`` is then not
  used). Otherwise each split ``s`` is looked for as ``MINDsmall_<s>``, ``MINDlarge_<s>`` or
  ``<s>`` inside ``directory``.
  """
  if isinstance(splits, str):
    splits = (splits,)
  unknown = [s for s in splits if s not in SPLITS]
  if unknown or not splits:
    raise ConfigError(f"MIND splits must be a non-empty subset of {SPLITS}, got {tuple(splits)}")
  path = formats.local_or_uri(directory)
  expected = f"{NEWS_FILE} and {BEHAVIORS_FILE}"
  if not path.is_dir():
    state = "does not exist" if not path.exists() else "is not a directory"
    raise DataError(f"data directory {path} {state}; the mind format expects a folder with "
                    f"{expected} (or MIND-small's MINDsmall_train/ and MINDsmall_dev/ folders); "
                    f"{DOWNLOAD_HINT}")
  present = [f for f in (NEWS_FILE, BEHAVIORS_FILE) if (path / f).is_file()]
  if len(present) == 2:
    return [path]
  if present:
    missing = BEHAVIORS_FILE if present[0] == NEWS_FILE else NEWS_FILE
    raise DataError(f"data directory {path} has {present[0]} but no {missing}; the mind format "
                    f"expects {expected} together; {DOWNLOAD_HINT}")
  found = []
  for split in splits:
    names = (f"MINDsmall_{split}", f"MINDlarge_{split}", split)
    folder = next((path / n for n in names if (path / n).is_dir()), None)
    if folder is None:
      raise DataError(f"data directory {path} has neither {expected} nor a {split} split folder "
                      f"({', '.join(n + '/' for n in names)}) holding them; {DOWNLOAD_HINT}")
    absent = [f for f in (NEWS_FILE, BEHAVIORS_FILE) if not (folder / f).is_file()]
    if absent:
      raise DataError(f"MIND {split} folder {folder} has no {' and '.join(absent)}; it should hold "
                      f"{expected} as unzipped from MINDsmall_{split}.zip; {DOWNLOAD_HINT}")
    found.append(folder)
  return found


# ----------------------------------------------------------------------------------------------
# news.tsv


def read_news(path: Path) -> dict[str, MindNews]:
  """Parses one news.tsv into {NewsID: MindNews}, in file order.

  Raises:
    DataError: wrong field count, empty NewsID or Category, a NewsID with spaces, a NewsID
      repeated within the file, bytes that are not UTF-8.
  """
  texts, where = formats._split_lines(path, formats._decode(path, formats._read_bytes(path),
                                                            "utf-8"))
  columns = formats._split_fields(texts, where, "\t", _NEWS_FIELDS)
  del texts
  ids, categories, subcategories, titles = columns[:4]
  news: dict[str, MindNews] = {}
  first_line: dict[str, int] = {}
  for i, news_id in enumerate(ids):
    if not news_id or news_id != news_id.strip() or " " in news_id:
      raise where.error(i, f"NewsID must be a non-empty token without spaces, got {news_id!r}")
    if not categories[i].strip():
      raise where.error(i, f"news {news_id} has an empty Category")
    if news_id in news:
      raise where.error(i, f"duplicate NewsID {news_id} (first on line {first_line[news_id]})")
    first_line[news_id] = where.linenos[i]
    news[news_id] = MindNews(categories[i].strip(), subcategories[i].strip(), titles[i].strip())
  return news


def _merged_news(folders: Iterable[Path]) -> tuple[dict[str, MindNews], list[Path]]:
  """news.tsv of every folder merged; a NewsID seen in an earlier split keeps that row."""
  merged: dict[str, MindNews] = {}
  paths = []
  for folder in folders:
    path = folder / NEWS_FILE
    for news_id, row in read_news(path).items():
      merged.setdefault(news_id, row)
    paths.append(path)
  return merged, paths


def mind_subcategories(directory: str | os.PathLike, *, splits: Sequence[str] = ("train",)
                       ) -> dict[str, str]:
  """{NewsID: SubCategory} from the news.tsv of ``splits`` (same layout rules as load_mind)."""
  news, _ = _merged_news(split_dirs(directory, splits))
  return {news_id: row.subcategory for news_id, row in news.items()}


# ----------------------------------------------------------------------------------------------
# behaviors.tsv


@dataclasses.dataclass
class _User:
  """What one user's impressions contribute to their sequence."""

  first_key: tuple[datetime.datetime, int]  # (time, global line order) of the earliest impression
  history: str  # History field of that impression
  clicks: list[tuple[datetime.datetime, int, str]]  # (time, order, NewsID) of every click


def _read_behaviors(path: Path, users: dict[str, _User], order: int) -> int:
  """Adds the impressions of one behaviors.tsv to ``users``.

  Args:
    path: the file.
    users: UserID -> _User, updated in place.
    order: global index of the file's first impression (earlier splits come first).

  Returns:
    the global index after the file's last impression.

  Raises:
    DataError: wrong field count, empty UserID, a Time not in ``TIME_FORMAT``, an impression not
      ``NewsID-0`` / ``NewsID-1``, bytes that are not UTF-8.
  """
  texts, where = formats._split_lines(path, formats._decode(path, formats._read_bytes(path),
                                                            "utf-8"))
  columns = formats._split_fields(texts, where, "\t", _BEHAVIOR_FIELDS)
  del texts
  _, user_ids, times, histories, impressions = columns
  parsed_times: dict[str, datetime.datetime] = {}
  for i, user_id in enumerate(user_ids):
    user_id = user_id.strip()
    if not user_id:
      raise where.error(i, "empty UserID")
    stamp = times[i].strip()
    time = parsed_times.get(stamp)
    if time is None:
      try:
        time = datetime.datetime.strptime(stamp, TIME_FORMAT)
      except ValueError:
        raise where.error(i, f"Time {times[i]!r} is not like '11/11/2019 9:05:58 AM' "
                          f"(month/day/year hour:minute:second AM|PM)") from None
      parsed_times[stamp] = time
    key = (time, order + i)
    clicks = []
    for token in impressions[i].split():
      news_id, dash, label = token.rpartition("-")
      if not dash or not news_id or label not in ("0", "1"):
        raise where.error(i, f"impression {token!r} is not NewsID-1 (clicked) or NewsID-0 (not "
                          f"clicked); unlabelled impressions (the MIND test split) cannot be used")
      if label == "1":
        clicks.append((time, order + i, news_id))
    user = users.get(user_id)
    if user is None:
      users[user_id] = _User(key, histories[i], clicks)
    else:
      if key < user.first_key:
        user.first_key, user.history = key, histories[i]
      user.clicks.extend(clicks)
  return order + len(user_ids)


# ----------------------------------------------------------------------------------------------
# The dataset.


def load_mind(directory: str | os.PathLike, *, splits: Sequence[str] = ("train",),
              name: str = "mind") -> InteractionData:
  """Loads MIND click sequences (see the module docstring for the layout and the rules).

  Args:
    directory: a folder holding news.tsv and behaviors.tsv, or the split folders.
    splits: which split folders to read and merge, a subset of ("train", "dev"), oldest first;
      not used when ``directory`` holds the files itself.
    name: dataset name for reports.

  Returns:
    the users with at least :data:`MIN_ITEMS` items, in natural UserID order.

  Raises:
    DataError: missing files, malformed lines, or no user with MIN_ITEMS items.
  """
  folders = split_dirs(directory, splits)
  news, news_paths = _merged_news(folders)
  users: dict[str, _User] = {}
  order = 0
  behavior_paths = []
  for folder in folders:
    path = folder / BEHAVIORS_FILE
    order = _read_behaviors(path, users, order)
    behavior_paths.append(path)

  missing = total = 0
  kept: dict[str, list[str]] = {}
  for user_id in sorted(users, key=natural_key):
    user = users[user_id]
    entries = user.history.split()
    user.clicks.sort()  # by (time, order); NewsID never decides (orders are unique)
    entries.extend(c[2] for c in user.clicks)
    known = [e for e in entries if e in news]
    total += len(entries)
    missing += len(entries) - len(known)
    sequence = list(dict.fromkeys(known))
    if len(sequence) >= MIN_ITEMS:
      kept[user_id] = sequence
  if missing:
    warnings.warn(f"{missing} history/click entries refer to news missing from news.tsv (of "
                  f"{total} entries read); they are dropped", stacklevel=2)
  sources = ", ".join(str(p) for p in behavior_paths)
  if not kept:
    raise DataError(f"{sources}: no user has {MIN_ITEMS} or more known news in history + clicks "
                    f"({len(users)} users read, all dropped); is news.tsv from the same split?")
  logging.info("MIND: kept %d of %d users (dropped %d with fewer than %d items)", len(kept),
               len(users), len(users) - len(kept), MIN_ITEMS)

  item_ids = sorted({n for seq in kept.values() for n in seq}, key=natural_key)
  index = {n: i for i, n in enumerate(item_ids, start=1)}
  sequences = [np.fromiter(map(index.__getitem__, seq), dtype=np.int32, count=len(seq))
               for seq in kept.values()]
  item_tags = [(news[n].category,) for n in item_ids]
  return InteractionData(
      sequences=sequences,
      user_ids=list(kept),
      item_ids=item_ids,
      item_titles=[news[n].title for n in item_ids],
      item_tags=item_tags,
      tag_names=tuple(sorted({t for tags in item_tags for t in tags})),
      source_files=formats._absolute(*(p for pair in zip(news_paths, behavior_paths)
                                       for p in pair)),
      name=name,
  )
