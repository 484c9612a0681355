"""From config to a preprocessed :class:`SplitData`, cached next to a manifest.

The cache lives in ``<cache_dir>/<name>-<format>-L<max_len>/`` as ``arrays.npz`` plus
``manifest.json``. The manifest records every source file with its sha256 and the protocol
fields; a rerun whose sources or fields match reuses the arrays, one whose sources changed is
reported as stale and rebuilt. Both files are written atomically (one folder rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib

import numpy as np

from dpr_jax import atomic
from dpr_jax.data import fetch, formats, synthetic
from dpr_jax.data.split import SplitData, leave_one_out
from dpr_jax.data.types import InteractionData
from dpr_jax.errors import DataError

CACHE_VERSION = 1  # Bump when the preprocessing changes meaning.


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
  h = hashlib.sha256()
  with formats.local_or_uri(path).open("rb") as f:
    while block := f.read(chunk):
      h.update(block)
  return h.hexdigest()


def default_cache_dir():
  """$DPR_CACHE_DIR (a folder or a gs:// URI), else ~/.cache/dpr_jax."""
  return atomic.as_path(os.environ.get("DPR_CACHE_DIR") or pathlib.Path.home() / ".cache" / "dpr_jax")


def resolve_data_dir(data_config) -> pathlib.Path | None:
  """config.data.dir, else $DPR_DATA_DIR, else None (the download cache, where there is one)."""
  if data_config.dir:
    return formats.local_or_uri(data_config.dir)
  if os.environ.get("DPR_DATA_DIR"):
    return formats.local_or_uri(os.environ["DPR_DATA_DIR"])
  return None


def available_data_dir(data_config, cache_dir=None) -> pathlib.Path | None:
  """The folder :func:`prepare` would read without downloading anything, or None."""
  directory = resolve_data_dir(data_config)
  if directory is not None:
    return directory if directory.exists() else None
  local = _local_cache(atomic.as_path(cache_dir or data_config.cache_dir or default_cache_dir()))
  if data_config.format == "sasrec" and all(
      (local / fetch.SASREC_DIR / f).is_file() for f in fetch.SASREC_FILES):
    return local / fetch.SASREC_DIR
  return None


def _local_cache(cache_dir: pathlib.Path) -> pathlib.Path:
  """Downloads are unpacked with local renames: a gs:// cache keeps them in the local default."""
  return cache_dir if not atomic.is_uri(cache_dir) else pathlib.Path.home() / ".cache" / "dpr_jax"


def load_interactions(data_config, cache_dir: pathlib.Path) -> InteractionData:
  """Reads the raw interactions named by the config (no split, no cache)."""
  fmt = data_config.format
  if fmt == "synthetic":
    return synthetic.make_synthetic(
        num_users=data_config.synthetic_users, num_items=data_config.synthetic_items,
        num_tags=data_config.synthetic_tags, seed=0)
  directory = resolve_data_dir(data_config)
  if fmt == "sasrec" and directory is None:  # the benchmark files, pinned and checked
    directory = fetch.ensure_ml1m_sasrec(_local_cache(cache_dir))
  if fmt == "grouplens" and (directory is None or not (directory / "ratings.dat").exists()):
    if directory is None or not directory.exists():
      directory = fetch.ensure_ml1m(_local_cache(cache_dir))
  if fmt == "mind" and directory is None:  # MIND-small from its release location
    directory = fetch.ensure_mind_small(_local_cache(cache_dir))
  if directory is None:
    raise DataError(
        f"no data directory for format {fmt!r}: set DPR_DATA_DIR or --config.data.dir to the"
        " folder with the files")
  if fmt == "csv":
    tags = (directory / data_config.tags_file) if data_config.tags_file else None
    if not data_config.interactions_file:  # a folder: interactions.csv[.gz] and its tag table
      return formats.load_dataset("csv", directory, **({"tags_path": tags} if tags else {}))
    return formats.load_csv(directory / data_config.interactions_file, tags)
  return formats.load_dataset(fmt, directory)


def _manifest(data: InteractionData, data_config) -> dict:
  return {
      "cache_version": CACHE_VERSION,
      "name": data_config.name,
      "format": data_config.format,
      "sources": [{"path": str(p), "sha256": sha256_file(p)} for p in data.source_files],
      "split": "leave-one-out (last item test, second-to-last validation)",
      "max_len": int(data_config.max_len),
      "synthetic": (_manifest_synthetic(data_config)
                    if data_config.format == "synthetic" else None),
  }


def _sources_match(manifest: dict) -> bool:
  for src in manifest.get("sources", []):
    if not formats.local_or_uri(src["path"]).exists() or sha256_file(src["path"]) != src["sha256"]:
      return False
  return True


def _save(path, split: SplitData, manifest: dict) -> None:
  """Writes arrays.npz, then manifest.json (last: it marks the folder complete)."""
  with atomic.directory(path) as tmp:
    with (tmp / "arrays.npz").open("wb") as f:  # a file object: np.savez cannot open gs:// itself
      np.savez(f, **{k: getattr(split, k) for k in SplitData.ARRAY_FIELDS})
    meta = dict(manifest, num_items=split.num_items, tag_names=list(split.tag_names),
                item_titles=list(split.item_titles), item_ids=list(split.item_ids),
                user_ids=list(split.user_ids))
    (tmp / "manifest.json").write_text(json.dumps(meta), encoding="utf-8")


def _load(path) -> SplitData:
  meta = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
  with (path / "arrays.npz").open("rb") as f, np.load(f) as z:
    arrays = {k: z[k] for k in SplitData.ARRAY_FIELDS}
  manifest = {k: meta[k] for k in ("cache_version", "name", "format", "sources", "split",
                                    "max_len", "synthetic")}
  return SplitData(**arrays, num_items=int(meta["num_items"]), tag_names=tuple(meta["tag_names"]),
                   item_titles=tuple(meta["item_titles"]), item_ids=tuple(meta["item_ids"]),
                   user_ids=tuple(meta["user_ids"]), manifest=manifest)


def prepare(data_config, cache_dir: str | os.PathLike | None = None) -> SplitData:
  """The split dataset for ``data_config``, from the cache when it is fresh."""
  cache_dir = atomic.as_path(cache_dir or data_config.cache_dir or default_cache_dir())
  path = cache_dir / f"{data_config.name}-{data_config.format}-L{data_config.max_len}"
  if (path / "manifest.json").exists():
    try:
      cached = _load(path)
    except (OSError, ValueError, KeyError) as e:
      logging.warning("data cache %s is unreadable (%s); rebuilding", path, e)
    else:
      same_fields = (cached.manifest["cache_version"] == CACHE_VERSION
                     and cached.manifest["max_len"] == data_config.max_len
                     and (data_config.format != "synthetic"
                          or cached.manifest["synthetic"] == _manifest_synthetic(data_config)))
      if same_fields and _sources_match(cached.manifest):
        return cached
      logging.warning("data cache %s is stale (sources or protocol fields changed); rebuilding",
                      path)
  data = load_interactions(data_config, cache_dir)
  split = leave_one_out(data, data_config.max_len)
  manifest = _manifest(data, data_config)
  try:
    _save(path, split, manifest)
  except OSError as e:
    raise DataError(f"cannot write the data cache {path} ({e.strerror or e}); set"
                    " --config.data.cache_dir or DPR_CACHE_DIR to a writable folder") from None
  return _load(path)


def require_tags(split: SplitData, data_config) -> None:
  """Refuses a dataset without item tags for the DPR stages (they steer by tag): DataError."""
  if split.tag_names and split.item_tags[1:].any():
    return
  sources = [s["path"] for s in split.manifest.get("sources", [])]
  where = sources[-1] if len(sources) > 1 else (sources[0] if sources else data_config.name)
  raise DataError(
      f"{where}: no item has a tag, but stages 2-3 steer recommendations by tag; give the items"
      " tags (format csv: --config.data.tags_file, a CSV 'item,tags' or a movies.dat) or run"
      " stage 1 only (--config.stages=1)")


def _manifest_synthetic(data_config) -> dict:
  return {"users": data_config.synthetic_users, "items": data_config.synthetic_items,
          "tags": data_config.synthetic_tags, "seed": 0}
