"""Readers for MovieLens-1M style interaction files.

Three layouts are supported, each producing an :class:`InteractionData`:

* ``grouplens``: the archive as GroupLens ships it. ``ratings.dat`` holds lines
  ``UserID::MovieID::Rating::Timestamp`` (ASCII digits) and ``movies.dat`` holds lines
  ``MovieID::Title::Genres`` (latin-1, genres ``|``-separated).
* ``sasrec``: the canonical SASRec ``ml-1m.txt`` (``user item`` per line, chronological within
  each user, ids >= 1) plus a map ``sasrec_item_id movie_id`` into ``movies.dat``.
* ``csv``: a generic CSV with a header row (``user,item`` and optionally ``rating``,
  ``timestamp``, ``pos``), plain or gzip-compressed, with an optional item tag table.

Every malformed input raises :class:`DataError` with a one-line message of the form
``<path>:<line>: <what is wrong>`` (line numbers are 1-based physical lines of the file).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import re
import warnings
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from dpr_jax import atomic
from dpr_jax.data.types import InteractionData
from dpr_jax.errors import ConfigError, DataError

FORMATS = ("grouplens", "sasrec", "csv", "mind")

_HINT = "put the ML-1M files there or set DPR_DATA_DIR / --config.data.dir"
_UINT = re.compile(r"[0-9]{1,18}")  # at most 18 digits: always fits in int64
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NO_GENRES = "(no genres listed)"

# Accepted CSV header names (compared case-insensitively) for each column role.
_CSV_COLUMNS = {
    "user": ("user", "user_id", "userid"),
    "item": ("item", "item_id", "itemid", "movie_id", "movieid"),
    "rating": ("rating",),
    "timestamp": ("timestamp",),
    "pos": ("pos", "position"),
}
_TAG_COLUMNS = {
    "item": _CSV_COLUMNS["item"],
    "tags": ("tags", "genres"),
    "title": ("title",),
}
# Files looked for when the csv format is given a directory rather than a file.
_CSV_INTERACTION_FILES = ("interactions.csv", "interactions.csv.gz", "interactions_ordered.csv",
                          "interactions_ordered.csv.gz")
_CSV_TAG_FILES = ("item_tags.csv", "item_tags.csv.gz", "movies.dat")


# ----------------------------------------------------------------------------------------------
# Reading and splitting lines.


@dataclasses.dataclass(frozen=True)
class _Where:
  """Where the rows of one file came from, for error messages.

  Attributes:
    path: the file, as given.
    linenos: 1-based physical line number of each data row (blank lines are skipped).
    unterminated: True when the last row is on the file's last line and that line has no
      trailing newline.
  """

  path: Path
  linenos: Sequence[int]
  unterminated: bool

  def error(self, i: int, message: str) -> DataError:
    """A DataError for row ``i``: ``<path>:<line>: message`` (plus a truncation hint)."""
    if self.unterminated and i == len(self.linenos) - 1:
      message += " (the last line has no newline: is the file truncated?)"
    return DataError(f"{self.path}:{self.linenos[i]}: {message}")


def _read_bytes(path: Path) -> bytes:
  """The file's bytes, gunzipped when they start with the gzip magic number."""
  try:
    data = path.read_bytes()
  except FileNotFoundError:
    raise DataError(f"{path}: file does not exist") from None
  except IsADirectoryError:
    raise DataError(f"{path}: is a directory, expected a file") from None
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
  if data[:2] == b"\x1f\x8b":
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
      raise DataError(f"{path}: not a valid gzip file ({e})") from None
  return data


def _decode(path: Path, data: bytes, encoding: str) -> str:
  """Decodes ``data``; an undecodable byte raises a DataError naming its line and column."""
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
    label = "ASCII" if encoding == "ascii" else "UTF-8"
    raise DataError(f"{path}:{line}: byte 0x{data[e.start]:02x} at column {column} is not valid "
                    f"{label} text") from None
  if text.startswith("\ufeff"):  # byte-order mark
    text = text[1:]
  if "\r\n" in text:
    text = text.replace("\r\n", "\n")
  return text


def _split_lines(path: Path, text: str) -> tuple[list[str], _Where]:
  """Splits ``text`` into its non-blank lines; an empty (or all-blank) file is a DataError."""
  texts = text.split("\n")
  unterminated = not text.endswith("\n")
  if not unterminated:
    texts.pop()
  keep = [i for i, t in enumerate(texts) if t and not t.isspace()]
  if not keep:
    raise DataError(f"{path}: file is empty")
  unterminated = unterminated and keep[-1] == len(texts) - 1
  if len(keep) == len(texts):
    return texts, _Where(path, range(1, len(texts) + 1), unterminated)
  return [texts[i] for i in keep], _Where(path, [i + 1 for i in keep], unterminated)


def _split_fields(texts: list[str], where: _Where, sep: str | None,
                  names: Sequence[str]) -> list[tuple[str, ...]]:
  """Splits every line on ``sep`` (None: runs of whitespace) into exactly ``len(names)`` fields.

  Returns:
    one tuple of strings per column, each of length ``len(texts)``.
  """
  parts = [t.split(sep) for t in texts]
  counts = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
  bad = np.flatnonzero(counts != len(names))
  if bad.size:
    i = int(bad[0])
    layout = (sep or " ").join(names)
    raise where.error(i, f"expected {len(names)} fields '{layout}', got {counts[i]}")
  return list(zip(*parts))


def _parse_uints(where: _Where, column: Sequence[str], field: str) -> np.ndarray:
  """int64[n]: ``column`` parsed as non-negative decimal integers."""
  matches = list(map(_UINT.fullmatch, column))
  if not all(matches):
    i = matches.index(None)
    raise where.error(i, f"{field} must be a non-negative integer, got {column[i]!r}")
  return np.fromiter(map(int, column), dtype=np.int64, count=len(column))


def _parse_numbers(where: _Where, column: Sequence[str], field: str) -> np.ndarray:
  """int64[n] when every entry is an integer, else float64[n]; anything else is a DataError."""
  if all(map(_UINT.fullmatch, column)):
    return np.fromiter(map(int, column), dtype=np.int64, count=len(column))
  matches = list(map(_NUMBER.fullmatch, column))
  if not all(matches):
    i = matches.index(None)
    raise where.error(i, f"{field} must be a number, got {column[i]!r}")
  return np.fromiter(map(float, column), dtype=np.float64, count=len(column))


def _check_minimum(where: _Where, values: np.ndarray, field: str, minimum: int) -> None:
  low = np.flatnonzero(values < minimum)
  if low.size:
    i = int(low[0])
    raise where.error(i, f"{field} must be >= {minimum}, got {values[i]}")


_TABLE_BYTES = np.zeros(256, dtype=bool)
_TABLE_BYTES[list(b"0123456789 \n")] = True


def _fast_int_table(data: bytes, sep: str | None, n: int) -> tuple[np.ndarray, np.ndarray] | None:
  """Vectorised parse of bytes whose every non-blank line is ``n`` integers joined by ``sep``.

  Args:
    data: the file's bytes.
    sep: the field separator; None means runs of spaces or tabs.
    n: fields per line.

  Returns:
    ``(values, linenos)``: int64[rows, n] and the 1-based line of each row, int64[rows]; or None
    when anything does not fit that shape exactly (other bytes, a wrong field count, an empty
    field, an integer of more than 18 digits, no rows at all). Callers then parse line by line,
    which names the offending line.
  """
  if b"\r" in data:
    data = data.replace(b"\r\n", b"\n")
  if sep is None:
    data = data.replace(b"\t", b" ")
  elif b" " in data or b"\t" in data:
    return None
  else:
    data = data.replace(sep.encode(), b" ")
  a = np.frombuffer(data, dtype=np.uint8)
  if not a.size or not _TABLE_BYTES[a].all():
    return None
  digit = (a >= ord("0")) & (a <= ord("9"))
  edges = np.diff(digit.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
  starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
  if not starts.size or starts.size % n or (ends - starts).max() > 18:
    return None
  newlines = np.flatnonzero(a == ord("\n"))
  token_line = np.searchsorted(newlines, starts).reshape(-1, n)  # 0-based line of each token
  row_line = token_line[:, 0]
  if (token_line != row_line[:, None]).any() or (np.diff(row_line) == 0).any():
    return None  # some line holds a number of tokens other than n
  if sep is not None:  # exactly n - 1 separators per row, none elsewhere: no empty fields
    space_line = np.searchsorted(newlines, np.flatnonzero(a == ord(" ")))
    per_line = np.bincount(space_line, minlength=len(newlines) + 1)
    if space_line.size != row_line.size * (n - 1) or (per_line[row_line] != n - 1).any():
      return None
  values = _parse_spaced_ints(data, starts.size)
  if values is None:
    return None
  return values.reshape(-1, n), row_line + 1


def _parse_spaced_ints(data: bytes, count: int) -> np.ndarray | None:
  """int64[count] from whitespace-separated decimal integers (already validated)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
      values = np.fromstring(data, dtype=np.int64, sep=" ")
    except (ValueError, AttributeError):  # a future numpy without text-mode fromstring
      values = np.array(data.split()).astype(np.int64)
  return values if values.size == count else None


def _read_int_table(path: Path, sep: str | None, names: Sequence[str]) -> tuple[np.ndarray, _Where]:
  """Reads an ASCII file of ``len(names)`` non-negative integers per line.

  Returns:
    ``(values, where)``: int64[rows, len(names)] and the rows' line numbers.
  """
  data = _read_bytes(path)
  fast = _fast_int_table(data, sep, len(names))
  if fast is not None:
    values, linenos = fast
    unterminated = not data.endswith(b"\n") and int(linenos[-1]) == data.count(b"\n") + 1
    return values, _Where(path, linenos.tolist(), unterminated)
  texts, where = _split_lines(path, _decode(path, data, "ascii"))
  columns = _split_fields(texts, where, sep, names)
  del texts
  values = np.stack([_parse_uints(where, c, f) for c, f in zip(columns, names)], axis=1)
  return values, where


def _first_duplicate(values: Sequence) -> tuple[int, int] | None:
  """(first, second) positions of the first value seen twice, or None."""
  seen: dict = {}
  for i, v in enumerate(values):
    j = seen.setdefault(v, i)
    if j != i:
      return j, i
  return None


def _split_tags(field: str) -> tuple[str, ...]:
  """``"Action|Comedy"`` -> ``("Action", "Comedy")``; empty and "(no genres listed)" -> ()."""
  tags = (t.strip() for t in field.split("|"))
  return tuple(dict.fromkeys(t for t in tags if t and t != _NO_GENRES))


# ----------------------------------------------------------------------------------------------
# Assembling an InteractionData.


def _group_sequences(user_codes: np.ndarray, items: np.ndarray, num_users: int,
                     order_keys: Sequence[np.ndarray] = ()) -> list[np.ndarray]:
  """Groups interactions into one chronological int32 array per user.

  Args:
    user_codes: int[n], user index 0..num_users-1 of each interaction (file order).
    items: int[n], internal item index 1..num_items of each interaction.
    num_users: number of users; every code must occur.
    order_keys: arrays of length n, primary key first; ties keep file order (stable sorts).

  Returns:
    ``num_users`` int32 arrays of item indices.
  """
  order = np.arange(len(items))
  for key in reversed(order_keys):
    order = order[np.argsort(key[order], kind="stable")]
  order = order[np.argsort(user_codes[order], kind="stable")]
  ordered = items[order].astype(np.int32)
  counts = np.bincount(user_codes, minlength=num_users)
  return np.split(ordered, np.cumsum(counts)[:-1])


def _tag_names(item_tags: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
  return tuple(sorted({t for tags in item_tags for t in tags}))


def local_or_uri(path: str | os.PathLike):
  """``path`` as a ``Path`` (``~`` expanded), or an ``etils.epath.Path`` for a gs:// URI (read
  through tf.io.gfile or gcsfs; ``pathlib`` would mangle it)."""
  return atomic.as_path(path) if atomic.is_uri(path) else Path(path).expanduser()


def _absolute(*paths: Path) -> tuple[str, ...]:
  return tuple(str(p) if atomic.is_uri(p) else str(p.resolve()) for p in paths)


def _dir_name(directory) -> str:
  return directory.name if atomic.is_uri(directory) else directory.resolve().name


def _require_dir(directory: str | os.PathLike, expected: Sequence[str], fmt: str) -> Path:
  """``directory`` as a Path, checking it exists and holds every file in ``expected``."""
  path = local_or_uri(directory)
  files = ", ".join(expected)
  if not path.exists():
    raise DataError(f"data directory {path} does not exist; {_HINT} (the {fmt} format expects "
                    f"{files})")
  if not path.is_dir():
    raise DataError(f"data directory {path} is not a directory; the {fmt} format expects a "
                    f"directory with {files}")
  missing = [f for f in expected if not (path / f).is_file()]
  if missing:
    raise DataError(f"data directory {path} has no {', '.join(missing)}; the {fmt} format "
                    f"expects {files} there; {_HINT}")
  return path


# ----------------------------------------------------------------------------------------------
# GroupLens movies.dat (shared by all three formats).


def _read_movies(path: Path) -> dict[int, tuple[str, tuple[str, ...]]]:
  """Parses ``MovieID::Title::Genres`` lines (latin-1) into {movie_id: (title, genres)}."""
  texts, where = _split_lines(path, _decode(path, _read_bytes(path), "latin-1"))
  ids_col, titles, genres = _split_fields(texts, where, "::", ("MovieID", "Title", "Genres"))
  ids = _parse_uints(where, ids_col, "MovieID").tolist()
  dup = _first_duplicate(ids)
  if dup:
    raise where.error(dup[1], f"duplicate MovieID {ids[dup[1]]} (first on line "
                      f"{where.linenos[dup[0]]})")
  return {m: (t, _split_tags(g)) for m, t, g in zip(ids, titles, genres)}


# ----------------------------------------------------------------------------------------------
# GroupLens and SASRec layouts.


def load_grouplens(directory: str | os.PathLike, *, ratings_file: str = "ratings.dat",
                   movies_file: str = "movies.dat", name: str | None = None) -> InteractionData:
  """Loads the GroupLens ML-1M layout (``ratings.dat`` + ``movies.dat``).

  Each user's ratings are ordered by Timestamp, ties kept in file order. Users are ordered by
  numeric UserID; internal item ``i`` is the i-th smallest MovieID that occurs in ratings.dat.
  Tags are the genres; titles come from movies.dat. Every rating counts as an interaction.

  Args:
    directory: folder holding the two files.
    ratings_file: ``UserID::MovieID::Rating::Timestamp`` lines, ASCII digits.
    movies_file: ``MovieID::Title::Genres`` lines, latin-1.
    name: dataset name for reports; defaults to the directory name.
  """
  directory = _require_dir(directory, (ratings_file, movies_file), "grouplens")
  ratings_path, movies_path = directory / ratings_file, directory / movies_file
  table, where = _read_int_table(ratings_path, "::", ("UserID", "MovieID", "Rating", "Timestamp"))
  users, movies, times = table[:, 0], table[:, 1], table[:, 3]
  info = _read_movies(movies_path)

  unknown = np.flatnonzero(~np.isin(movies, np.fromiter(info, dtype=np.int64, count=len(info))))
  if unknown.size:
    i = int(unknown[0])
    raise where.error(i, f"MovieID {movies[i]} is not in {movies_path}")
  item_values, item_codes = np.unique(movies, return_inverse=True)
  user_values, user_codes = np.unique(users, return_inverse=True)
  sequences = _group_sequences(user_codes, item_codes + 1, len(user_values), (times,))
  movie_list = item_values.tolist()
  item_tags = [info[m][1] for m in movie_list]
  return InteractionData(
      sequences=sequences,
      user_ids=[str(u) for u in user_values.tolist()],
      item_ids=[str(m) for m in movie_list],
      item_titles=[info[m][0] for m in movie_list],
      item_tags=item_tags,
      tag_names=_tag_names(item_tags),
      source_files=_absolute(ratings_path, movies_path),
      name=name or _dir_name(directory),
  )


def load_sasrec(directory: str | os.PathLike, sequence_file: str = "ml-1m.txt",
                item_map_file: str | None = "sasrec_item_to_movie.txt",
                movies_file: str | None = "movies.dat", *,
                name: str | None = None) -> InteractionData:
  """Loads the canonical SASRec file plus an item map into movies.dat.

  ``sequence_file`` has ``user item`` lines (ints >= 1), chronological within each user; that
  order is kept. Users are ordered by numeric id. SASRec item ids are kept as the internal
  indices, so ``num_items`` is the largest item id (in the sequences or the map) and every id
  1..num_items needs a line in ``item_map_file`` (``sasrec_item_id movie_id``). ``item_ids``
  are the mapped MovieIDs; titles and genres come from ``movies_file``.

  Args:
    directory: folder holding the files.
    sequence_file: the SASRec interactions file.
    item_map_file: SASRec item id -> MovieID map; None keeps the SASRec ids as ``item_ids`` and
      leaves titles and tags empty.
    movies_file: GroupLens movies.dat; None leaves titles and tags empty.
    name: dataset name for reports; defaults to the directory name.
  """
  expected = [f for f in (sequence_file, item_map_file, movies_file if item_map_file else None)
              if f]
  directory = _require_dir(directory, expected, "sasrec")
  seq_path = directory / sequence_file
  table, where = _read_int_table(seq_path, None, ("user", "item"))
  users, items = table[:, 0], table[:, 1]
  _check_minimum(where, users, "user", 1)
  _check_minimum(where, items, "item", 1)
  user_values, user_codes = np.unique(users, return_inverse=True)
  sequences = _group_sequences(user_codes, items, len(user_values))
  num_items = int(items.max())
  sources = [seq_path]

  item_ids = [str(i) for i in range(1, num_items + 1)]
  titles = [""] * num_items
  item_tags: list[tuple[str, ...]] = [()] * num_items
  if item_map_file:
    map_path = directory / item_map_file
    info = None
    if movies_file:
      movies_path = directory / movies_file
      info = _read_movies(movies_path)
    movie_of = _read_item_map(map_path, num_items, info, movies_file)
    sources.append(map_path)
    num_items = len(movie_of)
    item_ids = [str(m) for m in movie_of]
    titles, item_tags = [""] * num_items, [()] * num_items
    if info is not None:
      sources.append(movies_path)
      titles = [info[m][0] for m in movie_of]
      item_tags = [info[m][1] for m in movie_of]
  return InteractionData(
      sequences=sequences,
      user_ids=[str(u) for u in user_values.tolist()],
      item_ids=item_ids,
      item_titles=titles,
      item_tags=item_tags,
      tag_names=_tag_names(item_tags),
      source_files=_absolute(*sources),
      name=name or _dir_name(directory),
  )


def _read_item_map(path: Path, num_items: int, movies: dict | None,
                   movies_file: str | None) -> list[int]:
  """Parses ``sasrec_item_id movie_id`` lines.

  Args:
    path: the map file.
    num_items: largest SASRec item id in the interactions.
    movies: the MovieIDs of movies.dat (every mapped id must be one), or None.
    movies_file: name of movies.dat, for messages.

  Returns:
    the MovieID of SASRec items 1..N at positions 0..N-1, N being the larger of ``num_items``
    and the largest id in the map.
  """
  table, where = _read_int_table(path, None, ("sasrec_item_id", "movie_id"))
  _check_minimum(where, table[:, 0], "sasrec_item_id", 1)
  sasrec, movie_ids = table[:, 0].tolist(), table[:, 1].tolist()
  for values, what in ((sasrec, "SASRec item id"), (movie_ids, "movie id")):
    dup = _first_duplicate(values)
    if dup:
      raise where.error(dup[1], f"duplicate {what} {values[dup[1]]} (first on line "
                        f"{where.linenos[dup[0]]})")
  if movies is not None:
    for i, m in enumerate(movie_ids):
      if m not in movies:
        raise where.error(i, f"movie id {m} is not in {movies_file}")
  n = max(num_items, max(sasrec))
  movie_of = dict(zip(sasrec, movie_ids))
  absent = [i for i in range(1, n + 1) if i not in movie_of]
  if absent:
    raise DataError(f"{path}: no line for SASRec item {absent[0]} ({len(absent)} of the items "
                    f"1..{n} have none; every item id needs a line 'sasrec_item_id movie_id')")
  return [movie_of[i] for i in range(1, n + 1)]


# ----------------------------------------------------------------------------------------------
# Generic CSV.

_Column = np.ndarray | tuple[str, ...]


def load_csv(interactions_path: str | os.PathLike, tags_path: str | os.PathLike | None = None,
             *, name: str | None = None) -> InteractionData:
  """Loads a generic interactions CSV (plain or gzip) and an optional item tag table.

  The interactions file starts with a header naming at least a user column (``user``,
  ``user_id``, ``userId``) and an item column (``item``, ``item_id``, ``itemId``, ``movie_id``,
  ``movieId``); optional columns are ``rating`` (a number; checked, not used), ``timestamp``
  (a number) and ``pos`` (a non-negative integer). Each user's interactions are ordered by
  timestamp, then pos, then file order. Other columns are ignored.

  User and item ids are sorted numerically when they are all integers (and then written without
  leading zeros), else lexicographically; internal item ``i`` is the i-th item id in that order.

  The tag table is either a CSV with header ``item,tags[,title]`` (tags ``|``-separated, may be
  empty) or a GroupLens ``movies.dat`` (detected by ``::`` in its first line). Items without a
  row get no tags and an empty title; rows for items not in the interactions are ignored.

  Args:
    interactions_path: the interactions CSV (``.csv`` or gzip-compressed ``.csv.gz``).
    tags_path: optional item tag table.
    name: dataset name for reports; defaults to the file name without ``.csv``/``.gz``.
  """
  path = local_or_uri(interactions_path)
  if not path.is_file():
    raise DataError(f"data file {path} does not exist; {_HINT}")
  where, columns = _read_csv(path, _CSV_COLUMNS, ("user", "item"), fast=True)
  if "rating" in columns and not isinstance(columns["rating"], np.ndarray):
    _parse_numbers(where, columns["rating"], "rating")
  keys = []
  if "timestamp" in columns:
    ts = columns["timestamp"]
    keys.append(ts if isinstance(ts, np.ndarray) else _parse_numbers(where, ts, "timestamp"))
  if "pos" in columns:
    pos = columns["pos"]
    keys.append(pos if isinstance(pos, np.ndarray) else _parse_uints(where, pos, "pos"))
  user_ids, user_codes, _ = _index_ids(where, columns["user"], "user")
  item_ids, item_codes, numeric_items = _index_ids(where, columns["item"], "item")
  del columns
  sequences = _group_sequences(user_codes, item_codes + 1, len(user_ids), keys)

  sources = [path]
  titles = [""] * len(item_ids)
  item_tags: list[tuple[str, ...]] = [()] * len(item_ids)
  if tags_path is not None:
    tpath = local_or_uri(tags_path)
    if not tpath.is_file():
      raise DataError(f"tag table {tpath} does not exist (expected a CSV 'item,tags[,title]' or "
                      f"a GroupLens movies.dat)")
    sources.append(tpath)
    table = _read_tag_table(tpath, numeric_items)
    rows = [table.get(i, ("", ())) for i in item_ids]
    titles = [r[0] for r in rows]
    item_tags = [r[1] for r in rows]
    untagged = [i for i, tags in zip(item_ids, item_tags) if not tags]
    if untagged:
      warnings.warn(f"{tpath}: {len(untagged)} of {len(item_ids)} items have no tags (no row, or an"
                    f" empty tags field; first: item {untagged[0]!r})", stacklevel=2)
  stem = path.name
  for suffix in (".gz", ".csv"):
    stem = stem.removesuffix(suffix)
  return InteractionData(
      sequences=sequences,
      user_ids=user_ids,
      item_ids=item_ids,
      item_titles=titles,
      item_tags=item_tags,
      tag_names=_tag_names(item_tags),
      source_files=_absolute(*sources),
      name=name or stem,
  )


def _header_roles(path: Path, header: Sequence[str], line: int,
                  roles: dict[str, Sequence[str]], required: Sequence[str]) -> dict[str, int]:
  """Maps each column role found in ``header`` (case-insensitive aliases) to its column."""
  found: dict[str, int] = {}
  for j, h in enumerate(header):
    for role, accepted in roles.items():
      if h.strip().lower() in accepted:
        if role in found:
          raise DataError(f"{path}:{line}: columns {header[found[role]]!r} and {h!r} both name "
                          f"the {role} column")
        found[role] = j
  absent = [r for r in required if r not in found]
  if absent:
    wanted = "; ".join(f"{r}: one of {', '.join(roles[r])}" for r in absent)
    raise DataError(f"{path}:{line}: header {','.join(header)!r} lacks a required column "
                    f"({wanted})")
  return found


def _read_csv(path: Path, roles: dict[str, Sequence[str]], required: Sequence[str], *,
              fast: bool) -> tuple[_Where, dict[str, _Column]]:
  """Reads a CSV file with a header row (plain or gzip, UTF-8).

  Args:
    path: the file.
    roles: column role -> accepted header names, lower case.
    required: roles that must be present.
    fast: try the vectorised parser first; it applies when the header is on line 1 and every
      data field is a non-negative integer.

  Returns:
    ``(where, columns)``: the data rows' line numbers and, for each role present, its column:
    int64[rows] from the fast parser, else a tuple of stripped strings.
  """
  data = _read_bytes(path)
  if fast:
    first, newline, body = data.partition(b"\n")
    header = next(csv.reader([_decode(path, first.rstrip(b"\r"), "utf-8")]), [])
    if newline and any(h.strip() for h in header):
      table = _fast_int_table(body, ",", len(header))
      if table is not None:
        found = _header_roles(path, header, 1, roles, required)
        values, linenos = table
        unterminated = not data.endswith(b"\n") and int(linenos[-1]) == body.count(b"\n") + 1
        where = _Where(path, (linenos + 1).tolist(), unterminated)
        return where, {role: values[:, j] for role, j in found.items()}
  text = _decode(path, data, "utf-8")
  del data
  reader = csv.reader(io.StringIO(text, newline=""))
  rows: list[list[str]] = []
  linenos: list[int] = []
  try:
    for row in reader:
      if row and (len(row) > 1 or row[0].strip()):
        rows.append(row)
        linenos.append(reader.line_num)
  except csv.Error as e:
    raise DataError(f"{path}:{reader.line_num}: {e}") from None
  if not rows:
    raise DataError(f"{path}: file is empty")
  header, header_line = rows[0], linenos[0]
  found = _header_roles(path, header, header_line, roles, required)
  if len(rows) == 1:
    raise DataError(f"{path}: has a header on line {header_line} but no data rows")
  unterminated = not text.endswith("\n") and linenos[-1] == text.count("\n") + 1
  where = _Where(path, linenos[1:], unterminated)
  del text
  data_rows = rows[1:]
  del rows
  counts = np.fromiter(map(len, data_rows), dtype=np.int64, count=len(data_rows))
  bad = np.flatnonzero(counts != len(header))
  if bad.size:
    i = int(bad[0])
    raise where.error(i, f"expected {len(header)} fields '{','.join(header)}' (the header on "
                      f"line {header_line}), got {counts[i]}")
  transposed = list(zip(*data_rows))
  del data_rows
  return where, {role: tuple(map(str.strip, transposed[j])) for role, j in found.items()}


def _index_ids(where: _Where, values: _Column, what: str) -> tuple[list[str], np.ndarray, bool]:
  """Sorts the distinct ids and codes each value by its rank.

  Returns:
    ``(ids, codes, numeric)``: the sorted distinct ids (numeric order without leading zeros when
    every value is an integer, else lexicographic), int64[n] position of each value in ``ids``,
    and whether the ids are numeric.
  """
  if not isinstance(values, np.ndarray):
    if "" in values:
      raise where.error(values.index(""), f"empty {what} id")
    if all(map(_UINT.fullmatch, values)):
      values = np.fromiter(map(int, values), dtype=np.int64, count=len(values))
  if isinstance(values, np.ndarray):
    uniq, codes = np.unique(values, return_inverse=True)
    return [str(v) for v in uniq.tolist()], codes, True
  ids = sorted(set(values))
  index = {v: i for i, v in enumerate(ids)}
  codes = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values))
  return ids, codes, False


def _read_tag_table(path: Path, numeric_ids: bool) -> dict[str, tuple[str, tuple[str, ...]]]:
  """Reads an item tag table into {item id: (title, tags)}.

  Args:
    path: a CSV ``item,tags[,title]`` or a GroupLens movies.dat (first line contains ``::``).
    numeric_ids: the interaction item ids are integers, so table ids must be integers too
      (matched without leading zeros).
  """
  first = _read_bytes(path).lstrip().split(b"\n", 1)[0]
  if b"::" in first:
    return {str(m): v for m, v in _read_movies(path).items()}
  where, columns = _read_csv(path, _TAG_COLUMNS, ("item", "tags"), fast=False)
  ids = list(columns["item"])
  for i, item in enumerate(ids):
    if not item:
      raise where.error(i, "empty item id")
    if numeric_ids:
      if not _UINT.fullmatch(item):
        raise where.error(i, f"item id {item!r} is not a non-negative integer (the interaction "
                          f"item ids are integers)")
      ids[i] = str(int(item))
  dup = _first_duplicate(ids)
  if dup:
    raise where.error(dup[1], f"duplicate item id {ids[dup[1]]!r} (first on line "
                      f"{where.linenos[dup[0]]})")
  titles = columns.get("title", ("",) * len(ids))
  return {i: (t, _split_tags(g)) for i, t, g in zip(ids, titles, columns["tags"])}


def _find_first(directory: Path, candidates: Sequence[str]) -> Path | None:
  for c in candidates:
    if (directory / c).is_file():
      return directory / c
  return None


def load_dataset(fmt: str, directory_or_path: str | os.PathLike, **kw) -> InteractionData:
  """Loads a dataset in format ``fmt`` ("grouplens", "sasrec", "csv" or "mind").

  For "grouplens" and "sasrec", ``directory_or_path`` is the folder holding the files. For
  "csv" it is the interactions file, or a folder holding one of interactions.csv[.gz] /
  interactions_ordered.csv[.gz]; then, unless ``tags_path`` is given, the folder's
  item_tags.csv[.gz] or movies.dat (if any) is the tag table. For "mind" it is the folder of
  news.tsv + behaviors.tsv or of the MIND split folders (see dpr_jax.data.mind). ``kw`` goes to
  the loader.
  """
  if fmt not in FORMATS:
    raise ConfigError(f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}")
  if fmt == "mind":
    from dpr_jax.data import mind  # deferred: mind imports this module
    return mind.load_mind(directory_or_path, **kw)
  path = local_or_uri(directory_or_path)
  if not path.exists():
    expected = {"grouplens": "ratings.dat, movies.dat",
                "sasrec": "ml-1m.txt, sasrec_item_to_movie.txt, movies.dat",
                "csv": " or ".join(_CSV_INTERACTION_FILES)}[fmt]
    raise DataError(f"data directory {path} does not exist; {_HINT} (the {fmt} format expects "
                    f"{expected})")
  if fmt == "grouplens":
    return load_grouplens(path, **kw)
  if fmt == "sasrec":
    return load_sasrec(path, **kw)
  if path.is_dir():
    found = _find_first(path, _CSV_INTERACTION_FILES)
    if found is None:
      raise DataError(f"data directory {path} has no {' or '.join(_CSV_INTERACTION_FILES)}; the "
                      f"csv format expects one of them there; {_HINT}")
    tags = kw.pop("tags_path", None)
    if tags is None:
      tags = _find_first(path, _CSV_TAG_FILES)
    elif not atomic.is_uri(tags) and not Path(tags).is_absolute() and (path / tags).is_file():
      tags = path / tags
    return load_csv(found, tags, **kw)
  return load_csv(path, **kw)
