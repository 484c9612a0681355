"""Download of the official MovieLens-1M archive into a local cache.

``ensure_ml1m(cache_dir)`` returns ``cache_dir/ml-1m`` holding ``ratings.dat`` and
``movies.dat`` (the GroupLens layout read by ``formats.load_grouplens``). When they are missing
it downloads the GroupLens zip, checks its md5 and sha256, and unpacks it atomically: the zip is
written to a temporary file in ``cache_dir`` and extracted into a temporary folder that is then
renamed, so an interrupted run never leaves a half-written ``ml-1m`` behind.

Without network access the download fails fast and one DataError says where to put the files.

``ensure_ml1m_sasrec(cache_dir)`` returns ``cache_dir/ml-1m-sasrec`` holding the benchmark files of
format "sasrec" (the file every ML-1M number of the project uses): ``ml-1m.txt`` from the SASRec
authors' repository, ``sasrec_item_to_movie.txt`` (SASRec item id -> MovieLens MovieID) from the
public mapping repository, both at pinned commits and sha256-checked, and ``movies.dat`` (titles and
genres) from the GroupLens archive above, also checked. The folder appears complete or not at all.

``ensure_mind_small(cache_dir)`` does the same for MIND-small (``cache_dir/mind-small/
MINDsmall_train/{news,behaviors}.tsv``) from Microsoft's release location; MIND publishes no
checksums, so the archive is only checked for being a whole zip with the two files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

from dpr_jax.errors import DataError

ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
# Published by GroupLens next to the archive.
ML1M_MD5 = "c4d9eecfca2ab87c1945afe126590906"
# From tensorflow_datasets/url_checksums/movielens.txt (size 5917549 bytes).
ML1M_SHA256 = "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
ML1M_FILES = ("ratings.dat", "movies.dat")

# opener(url, timeout) -> a binary file-like response (urllib.request.urlopen's shape).
Opener = Callable[[str, float], BinaryIO]

_CHUNK = 1 << 16


def _urlopen(url: str, timeout: float) -> BinaryIO:
  return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (fixed https/file URLs)


def offline_message(cache_dir: Path, url: str, reason: str) -> str:
  """The one-line explanation given when the archive is absent and cannot be downloaded."""
  target = cache_dir / "ml-1m"
  return (f"ML-1M is not in {target} and could not be downloaded ({reason}); download the ML-1M "
          f"archive from {url} and unzip it into {cache_dir} (so that {target / 'ratings.dat'} "
          f"exists), or put ratings.dat and movies.dat in a folder and point DPR_DATA_DIR or "
          f"--config.data.dir at it")


def download(url: str, dest: Path, *, timeout: float = 20.0, opener: Opener = _urlopen,
             progress: bool = True) -> None:
  """Streams ``url`` into the file ``dest`` (created or truncated).

  Args:
    url: any URL ``opener`` understands (``https://``, ``file://``).
    dest: file to write.
    timeout: seconds to wait for the connection and for each read.
    opener: ``opener(url, timeout)`` returns a readable binary response; tests pass a fake.
    progress: show a tqdm bar when tqdm is installed.

  Raises:
    OSError (including urllib.error.URLError and TimeoutError) when the transfer fails.
  """
  with contextlib.closing(opener(url, timeout)) as response, open(dest, "wb") as out:
    total = _content_length(response)
    bar = _progress_bar(total, Path(url).name) if progress else None
    try:
      while chunk := response.read(_CHUNK):
        out.write(chunk)
        if bar is not None:
          bar.update(len(chunk))
    finally:
      if bar is not None:
        bar.close()


def _content_length(response: BinaryIO) -> int | None:
  headers = getattr(response, "headers", None)
  value = headers.get("Content-Length") if headers is not None else None
  return int(value) if value and value.isdigit() else None


def _progress_bar(total: int | None, label: str):
  try:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  return tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False)


def file_digests(path: Path) -> dict[str, str]:
  """{"md5": hex, "sha256": hex} of the file at ``path``."""
  digests = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
  with open(path, "rb") as f:
    while chunk := f.read(1 << 20):
      for h in digests.values():
        h.update(chunk)
  return {k: h.hexdigest() for k, h in digests.items()}


def verify_checksums(path: Path, url: str, *, md5: str | None, sha256: str | None) -> None:
  """Checks the file against the expected digests (None skips one); a mismatch is a DataError.

  The file is removed on mismatch.
  """
  got = file_digests(path)
  for kind, expected in (("sha256", sha256), ("md5", md5)):
    if expected is not None and got[kind] != expected.lower():
      path.unlink(missing_ok=True)
      raise DataError(f"checksum mismatch for {url}: expected {kind} {expected}, got "
                      f"{got[kind]}; the partial file was removed")


def _unzip(archive: Path, staging: Path) -> None:
  """Extracts ``archive`` into ``staging``, refusing absolute or ``..`` member paths."""
  try:
    with zipfile.ZipFile(archive) as zf:
      for member in zf.namelist():
        if member.startswith(("/", "\\")) or ".." in Path(member).parts:
          raise DataError(f"{archive}: unsafe path {member!r} in the archive")
      zf.extractall(staging)
  except (zipfile.BadZipFile, EOFError) as e:
    raise DataError(f"{archive}: not a valid zip archive ({e})") from None


def extract_ml1m(archive: Path, cache_dir: Path) -> Path:
  """Unpacks the archive's ``ml-1m/`` folder to ``cache_dir/ml-1m`` atomically.

  The zip is extracted into a temporary folder in ``cache_dir`` whose ``ml-1m`` subfolder is then
  renamed into place; if another process got there first, its copy is kept.
  """
  target = cache_dir / "ml-1m"
  staging = Path(tempfile.mkdtemp(prefix=".ml-1m-extract-", dir=cache_dir))
  try:
    _unzip(archive, staging)
    unpacked = staging / "ml-1m"
    missing = [f for f in ML1M_FILES if not (unpacked / f).is_file()]
    if missing:
      raise DataError(f"{archive}: the archive has no ml-1m/{', ml-1m/'.join(missing)}")
    if target.is_dir() and not any(target.iterdir()):
      target.rmdir()
    try:
      os.rename(unpacked, target)
    except OSError:
      if not (target / "ratings.dat").is_file():
        raise DataError(f"cannot move the extracted ML-1M files to {target}: it exists and has no "
                        f"ratings.dat; remove it and retry") from None
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return target


def ensure_ml1m(cache_dir: str | os.PathLike, *, online: bool | None = None,
                url: str = ML1M_URL, md5: str | None = ML1M_MD5,
                sha256: str | None = ML1M_SHA256, opener: Opener = _urlopen,
                timeout: float = 20.0) -> Path:
  """Returns a folder with ML-1M's ``ratings.dat`` and ``movies.dat``, downloading if needed.

  Args:
    cache_dir: where ``ml-1m/`` lives or is created.
    online: False never downloads (the offline error is raised at once when the files are
      missing); None or True try the download, and a network failure gives the offline error.
    url: the archive's URL.
    md5, sha256: expected digests of the archive (None skips that check).
    opener: ``opener(url, timeout)`` -> binary response; for tests.
    timeout: network timeout in seconds.

  Raises:
    DataError: offline, bad checksum, or a damaged archive.
  """
  cache_dir = Path(cache_dir).expanduser()
  target = cache_dir / "ml-1m"
  if (target / "ratings.dat").is_file():
    return target
  if online is False:
    raise DataError(offline_message(cache_dir, url, "offline mode"))
  try:
    cache_dir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise DataError(f"cannot create the data cache {cache_dir}: {e.strerror or e}") from None
  fd, tmp_name = tempfile.mkstemp(prefix=".ml-1m.zip.", suffix=".part", dir=cache_dir)
  os.close(fd)
  archive = Path(tmp_name)
  try:
    try:
      download(url, archive, timeout=timeout, opener=opener)
    except (OSError, ValueError) as e:  # URLError, HTTPError, TimeoutError, bad URL
      raise DataError(offline_message(cache_dir, url, _reason(e))) from None
    verify_checksums(archive, url, md5=md5, sha256=sha256)
    return extract_ml1m(archive, cache_dir)
  finally:
    archive.unlink(missing_ok=True)


# ======================================================================== ML-1M, SASRec version
@dataclasses.dataclass(frozen=True)
class Source:
  """One pinned file: where it comes from and the sha256 it must have."""
  name: str  # file name in the local folder
  url: str
  sha256: str


SASREC_COMMIT = "641c378fcfac265ea8d1e5fe51d4d53eb892d1b4"  # kang205/SASRec
MAPPING_COMMIT = "d27e2bf2021e12764e7bf7b985091edd7c8d2f79"  # asash/ml1m-sas-mapping
SASREC_SOURCES = (
    Source("ml-1m.txt",
           f"https://raw.githubusercontent.com/kang205/SASRec/{SASREC_COMMIT}/data/ml-1m.txt",
           "b725f3acb3986fe3130bffd1e77a74d182a1f51799567a236dbd60270f95b0a2"),
    Source("sasrec_item_to_movie.txt",
           f"https://raw.githubusercontent.com/asash/ml1m-sas-mapping/{MAPPING_COMMIT}/"
           "sas_to_original_items.txt",
           "9ae42c23af0b0fe2f189b9d5acc6cf3936bffe1a9568390cf5d100c0c1b1fca1"),
)
# movies.dat inside the GroupLens archive (ML1M_SHA256).
MOVIES_SHA256 = "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"
SASREC_FILES = tuple(s.name for s in SASREC_SOURCES) + ("movies.dat",)
SASREC_DIR = "ml-1m-sasrec"


def sasrec_offline_message(cache_dir: Path, url: str, reason: str) -> str:
  """The one-line error when the benchmark files are absent and a download failed."""
  return (f"the ML-1M benchmark files are not in {cache_dir / SASREC_DIR} and {url} could not be "
          f"downloaded ({reason}); put {', '.join(SASREC_FILES)} in a folder and point "
          f"DPR_DATA_DIR or --config.data.dir at it (docs/data.md)")


def ensure_ml1m_sasrec(cache_dir: str | os.PathLike, *, online: bool | None = None,
                       sources: tuple[Source, ...] = SASREC_SOURCES,
                       archive: dict | None = None, opener: Opener = _urlopen,
                       timeout: float = 20.0) -> Path:
  """Returns ``cache_dir/ml-1m-sasrec`` with ``SASREC_FILES``, downloading what is missing.

  Args:
    cache_dir: where the folder lives or is created (with ``ml-1m/`` from the GroupLens archive).
    online: False never downloads; None or True try, and a network failure is the offline error.
    sources: the pinned files (tests pass other URLs).
    archive: ``ensure_ml1m`` keyword overrides for the GroupLens archive (url, md5, sha256).
    opener: ``opener(url, timeout)`` -> binary response; for tests.
    timeout: network timeout in seconds.

  Raises:
    DataError: offline, a checksum mismatch (the file is removed), or a damaged archive.
  """
  cache_dir = Path(cache_dir).expanduser()
  target = cache_dir / SASREC_DIR
  if all((target / f).is_file() for f in SASREC_FILES):
    return target
  if online is False:
    raise DataError(sasrec_offline_message(cache_dir, sources[0].url, "offline mode"))
  try:
    cache_dir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise DataError(f"cannot create the data cache {cache_dir}: {e.strerror or e}") from None
  staging = Path(tempfile.mkdtemp(prefix=f".{SASREC_DIR}-", dir=cache_dir))
  try:
    for src in sources:
      dest = staging / src.name
      try:
        download(src.url, dest, timeout=timeout, opener=opener)
      except (OSError, ValueError) as e:
        raise DataError(sasrec_offline_message(cache_dir, src.url, _reason(e))) from None
      verify_checksums(dest, src.url, md5=None, sha256=src.sha256)
    grouplens = ensure_ml1m(cache_dir, online=online, opener=opener, timeout=timeout,
                            **(archive or {}))
    shutil.copyfile(grouplens / "movies.dat", staging / "movies.dat")
    verify_checksums(staging / "movies.dat", f"{grouplens / 'movies.dat'}", md5=None,
                     sha256=MOVIES_SHA256)
    if target.is_dir():
      shutil.rmtree(target)  # an incomplete earlier copy (the complete case returned early)
    os.rename(staging, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return target


def _reason(error: Exception) -> str:
  if isinstance(error, urllib.error.HTTPError):
    return f"HTTP {error.code}"
  if isinstance(error, urllib.error.URLError):
    return f"network error: {error.reason}"
  return f"{type(error).__name__}: {error}"


# ================================================================================ MIND-small
MIND_SMALL_URLS = {
    "train": "https://mind201910small.blob.core.windows.net/release/MINDsmall_train.zip",
    "dev": "https://mind201910small.blob.core.windows.net/release/MINDsmall_dev.zip",
}
MIND_FILES = ("news.tsv", "behaviors.tsv")


def ensure_mind_small(cache_dir: str | os.PathLike, splits=("train",), *,
                      online: bool | None = None, urls: dict[str, str] | None = None,
                      opener: Opener = _urlopen, timeout: float = 60.0) -> Path:
  """Returns ``cache_dir/mind-small`` holding ``MINDsmall_<split>/{news,behaviors}.tsv``.

  Missing splits are downloaded from Microsoft's release location (the links of
  https://msnews.github.io/) and unpacked atomically, as for ML-1M. MIND publishes no checksums:
  the archive must be a valid zip holding news.tsv and behaviors.tsv, and the dataset manifest
  records the sha256 of the files actually read (dpr_jax.data.prepare).

  Raises:
    DataError: offline (the message says where to put the files), or a damaged archive.
  """
  from dpr_jax.data.mind import DOWNLOAD_HINT  # deferred: mind imports formats

  urls = urls or MIND_SMALL_URLS
  root = Path(cache_dir).expanduser() / "mind-small"
  for split in splits:
    target = root / f"MINDsmall_{split}"
    if all((target / f).is_file() for f in MIND_FILES):
      continue
    url = urls[split]
    if online is False:
      raise DataError(f"MIND-small is not in {root} and offline mode is on; {DOWNLOAD_HINT}")
    try:
      root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise DataError(f"cannot create the data cache {root}: {e.strerror or e}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".MINDsmall_{split}.zip.", suffix=".part", dir=root)
    os.close(fd)
    archive = Path(tmp_name)
    try:
      try:
        download(url, archive, timeout=timeout, opener=opener)
      except (OSError, ValueError) as e:
        raise DataError(f"MIND-small is not in {root} and {url} could not be downloaded"
                        f" ({_reason(e)}); {DOWNLOAD_HINT}") from None
      _extract_flat(archive, target, MIND_FILES)
    finally:
      archive.unlink(missing_ok=True)
  return root


def _extract_flat(archive: Path, target: Path, required: tuple[str, ...]) -> None:
  """Unpacks ``archive`` (files at its root or in one top folder) to ``target`` atomically."""
  staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-extract-", dir=target.parent))
  try:
    _unzip(archive, staging)
    unpacked = staging
    entries = [p for p in staging.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir():
      unpacked = entries[0]
    missing = [f for f in required if not (unpacked / f).is_file()]
    if missing:
      raise DataError(f"{archive}: the archive has no {', '.join(missing)}")
    if target.is_dir():
      shutil.rmtree(target)  # an incomplete earlier copy (the complete case returned early)
    os.rename(unpacked, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
