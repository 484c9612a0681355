"""Tests of dpr_jax.data.fetch with local archives only (never the network)."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import urllib.error
import zipfile
from pathlib import Path

import pytest

from dpr_jax.data import fetch, formats
from dpr_jax.errors import DataError

RATINGS = b"1::20::5::300\n1::10::4::200\n2::10::3::100\n"
MOVIES = b"10::Ten (1990)::Drama\n20::Twenty (1991)::Comedy|Drama\n"


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
  with zipfile.ZipFile(path, "w") as zf:
    for name, content in members.items():
      zf.writestr(name, content)
  return path


def good_archive(tmp_path: Path) -> tuple[str, str, str]:
  """(url, md5, sha256) of a tiny ML-1M-shaped zip served from a file:// URL."""
  archive = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": RATINGS,
                                              "ml-1m/movies.dat": MOVIES,
                                              "ml-1m/README": b"tiny\n"})
  data = archive.read_bytes()
  return archive.as_uri(), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def no_network(url, timeout):
  raise AssertionError(f"unexpected download of {url}")


def test_downloads_verifies_and_extracts(tmp_path):
  url, md5, sha256 = good_archive(tmp_path)
  cache = tmp_path / "cache"
  target = fetch.ensure_ml1m(cache, url=url, md5=md5, sha256=sha256)
  assert target == cache / "ml-1m"
  assert (target / "ratings.dat").read_bytes() == RATINGS
  assert sorted(p.name for p in cache.iterdir()) == ["ml-1m"]  # no temporary leftovers
  data = formats.load_grouplens(target)
  assert [s.tolist() for s in data.sequences] == [[1, 2], [1]]
  # Second call: already there, no download.
  assert fetch.ensure_ml1m(cache, url=url, opener=no_network) == target
  assert fetch.ensure_ml1m(cache, online=False) == target


@pytest.mark.parametrize("which", ["md5", "sha256"])
def test_bad_checksum_removes_the_download(tmp_path, which):
  url, md5, sha256 = good_archive(tmp_path)
  wrong = {"md5": "0" * 32, "sha256": "0" * 64}[which]
  cache = tmp_path / "cache"
  with pytest.raises(DataError) as e:
    fetch.ensure_ml1m(cache, url=url, **{"md5": md5, "sha256": sha256, which: wrong})
  message = str(e.value)
  assert message.startswith(f"checksum mismatch for {url}: expected {which} {wrong}, got ")
  assert "the partial file was removed" in message
  assert list(cache.iterdir()) == []


def test_offline_flag_explains_where_to_put_files(tmp_path):
  with pytest.raises(DataError) as e:
    fetch.ensure_ml1m(tmp_path / "cache", online=False, opener=no_network)
  message = str(e.value)
  assert "DPR_DATA_DIR" in message and "--config.data.dir" in message
  assert fetch.ML1M_URL in message
  assert "\n" not in message


def test_network_failure_is_the_offline_error(tmp_path):
  def unreachable(url, timeout):
    assert timeout > 0
    raise urllib.error.URLError("Name or service not known")

  cache = tmp_path / "cache"
  with pytest.raises(DataError, match=r"could not be downloaded \(network error: Name or service"):
    fetch.ensure_ml1m(cache, opener=unreachable)
  assert list(cache.iterdir()) == []


def test_archive_without_ratings_leaves_nothing(tmp_path):
  archive = make_zip(tmp_path / "a.zip", {"ml-1m/movies.dat": MOVIES})
  cache = tmp_path / "cache"
  with pytest.raises(DataError, match=r"the archive has no ml-1m/ratings.dat"):
    fetch.ensure_ml1m(cache, url=archive.as_uri(), md5=None, sha256=None)
  assert list(cache.iterdir()) == []


def test_corrupt_archive(tmp_path):
  bogus = tmp_path / "a.zip"
  bogus.write_bytes(b"not a zip")
  cache = tmp_path / "cache"
  with pytest.raises(DataError, match=r"not a valid zip archive"):
    fetch.ensure_ml1m(cache, url=bogus.as_uri(), md5=None, sha256=None)
  assert list(cache.iterdir()) == []


def test_download_streams_through_opener(tmp_path):
  url, _, _ = good_archive(tmp_path)
  dest = tmp_path / "copy.zip"
  fetch.download(url, dest, progress=False)
  assert dest.read_bytes() == (tmp_path / "ml-1m.zip").read_bytes()


def test_checksums_match_tensorflow_datasets():
  spec = importlib.util.find_spec("tensorflow_datasets")
  if spec is None or not spec.submodule_search_locations:
    pytest.skip("tensorflow_datasets is not installed")
  table = Path(list(spec.submodule_search_locations)[0]) / "url_checksums" / "movielens.txt"
  if not table.is_file():
    pytest.skip(f"{table} not found")
  rows = [line.split("\t") for line in table.read_text().splitlines()]
  row = next(r for r in rows if r[0] == fetch.ML1M_URL)
  assert row[2] == fetch.ML1M_SHA256


# ------------------------------------------------------------------ the SASRec benchmark files
class FakeWeb:
  """An opener serving fixed bytes per URL (and recording the URLs asked for)."""

  def __init__(self, files: dict[str, bytes], fail: dict[str, Exception] | None = None):
    self.files, self.fail, self.asked = files, fail or {}, []

  def __call__(self, url, timeout):
    import io
    self.asked.append(url)
    if url in self.fail:
      raise self.fail[url]
    if url not in self.files:
      raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
    return io.BytesIO(self.files[url])


def grouplens_zip(tmp_path: Path, movies: bytes) -> tuple[bytes, dict]:
  data = make_zip(tmp_path / "gl.zip", {"ml-1m/ratings.dat": RATINGS,
                                        "ml-1m/movies.dat": movies}).read_bytes()
  return data, {"url": "https://example.org/ml-1m.zip", "md5": hashlib.md5(data).hexdigest(),
                "sha256": hashlib.sha256(data).hexdigest()}


def test_sasrec_files_download_pinned_and_checked(tmp_path):
  """The shared benchmark files served at the pinned URLs: they pass the pinned checksums, the
  folder is complete with nothing else left in the cache, and it loads as the benchmark."""
  from conftest import SHARED_ML1M
  if not all((SHARED_ML1M / f).is_file() for f in fetch.SASREC_FILES):
    pytest.skip(f"the ML-1M benchmark files are not in {SHARED_ML1M} (set DPR_DATA_DIR)")
  for src in fetch.SASREC_SOURCES:  # pinned: a commit in the URL, a sha256 beside it
    assert re.search(r"/[0-9a-f]{40}/", src.url) and len(src.sha256) == 64
  archive, checks = grouplens_zip(tmp_path, (SHARED_ML1M / "movies.dat").read_bytes())
  web = FakeWeb({**{s.url: (SHARED_ML1M / s.name).read_bytes() for s in fetch.SASREC_SOURCES},
                 checks["url"]: archive})
  cache = tmp_path / "cache"
  target = fetch.ensure_ml1m_sasrec(cache, archive=checks, opener=web)
  assert target == cache / fetch.SASREC_DIR
  assert sorted(p.name for p in cache.iterdir()) == ["ml-1m", fetch.SASREC_DIR]
  assert sorted(p.name for p in target.iterdir()) == sorted(fetch.SASREC_FILES)
  for name in fetch.SASREC_FILES:
    assert (target / name).read_bytes() == (SHARED_ML1M / name).read_bytes()
  assert web.asked == [s.url for s in fetch.SASREC_SOURCES] + [checks["url"]]
  data = formats.load_sasrec(target)
  assert (len(data.sequences), len(data.item_ids)) == (6040, 3416)
  # Complete: later calls read the cache and never download.
  assert fetch.ensure_ml1m_sasrec(cache, opener=no_network) == target
  assert fetch.ensure_ml1m_sasrec(cache, online=False) == target


def test_sasrec_checksum_mismatch_leaves_nothing(tmp_path):
  sources = (fetch.Source("ml-1m.txt", "https://example.org/a.txt", "0" * 64),)
  web = FakeWeb({"https://example.org/a.txt": b"1 1\n1 2\n1 3\n"})
  cache = tmp_path / "cache"
  with pytest.raises(DataError, match=r"checksum mismatch for https://example.org/a.txt: expected "
                                      r"sha256 0{64}, got [0-9a-f]{64}"):
    fetch.ensure_ml1m_sasrec(cache, sources=sources, opener=web)
  assert list(cache.iterdir()) == []  # no folder, no temporary files


def test_sasrec_failed_download_is_one_line_and_leaves_nothing(tmp_path):
  """The second file fails after the first arrived: the error names that URL and what to do, and
  the half-assembled folder is gone."""
  first, second = (b"1 1\n1 2\n1 3\n", b"1 10\n")
  sources = (fetch.Source("ml-1m.txt", "https://example.org/a.txt",
                          hashlib.sha256(first).hexdigest()),
             fetch.Source("sasrec_item_to_movie.txt", "https://example.org/b.txt",
                          hashlib.sha256(second).hexdigest()))
  web = FakeWeb({"https://example.org/a.txt": first},
                fail={"https://example.org/b.txt": urllib.error.URLError("connection refused")})
  cache = tmp_path / "cache"
  with pytest.raises(DataError) as e:
    fetch.ensure_ml1m_sasrec(cache, sources=sources, opener=web)
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith(f"the ML-1M benchmark files are not in {cache / fetch.SASREC_DIR} "
                            "and https://example.org/b.txt could not be downloaded (network "
                            "error: connection refused); ")
  assert "DPR_DATA_DIR or --config.data.dir" in message
  assert list(cache.iterdir()) == []
  with pytest.raises(DataError, match=r"could not be downloaded \(offline mode\)"):
    fetch.ensure_ml1m_sasrec(cache, online=False, opener=no_network)


def test_no_default_path_points_outside_the_package():
  """dpr_jax never reads a workplace folder by default: data comes from the config, the
  environment or a download."""
  root = Path(fetch.__file__).resolve().parents[1]
  hits = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
          for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
          if re.search(r"[\"'/]shared[\"'/]|\.\./shared", line)]
  assert hits == []
