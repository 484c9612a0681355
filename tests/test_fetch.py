"""Tests of dpr_jax.data.fetch with local archives only (never the network)."""

from __future__ import annotations

import hashlib
import importlib.util
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
