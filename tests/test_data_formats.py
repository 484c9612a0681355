"""Tests of dpr_jax.data.formats on small hand-written files (and ML-1M when present)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dpr_jax.data import formats
from dpr_jax.errors import ConfigError, DataError

from conftest import SHARED_ML1M as ML1M_DIR

RATINGS = ("2::20::5::300\n"
           "1::10::4::200\n"
           "1::30::3::100\n"
           "1::20::5::200\n"
           "2::10::1::100\n"
           "10::30::4::50\n")
MOVIES = ("10::Caf\xe9 (1999)::Comedy|Drama\n"
          "20::Toy Story (1995)::Animation|Children's|Comedy\n"
          "30::Heat (1995)::\n"
          "40::Unused (1990)::Horror\n").encode("latin-1")


def write(directory: Path, name: str, content: str | bytes) -> Path:
  path = directory / name
  path.write_bytes(content.encode() if isinstance(content, str) else content)
  return path


def seqs(data) -> list[list[int]]:
  return [s.tolist() for s in data.sequences]


@pytest.fixture(params=["fast", "line-by-line"])
def parser(request, monkeypatch):
  """Runs a test with the vectorised parser and again with the line-by-line one."""
  if request.param == "line-by-line":
    monkeypatch.setattr(formats, "_fast_int_table", lambda *args: None)
  return request.param


def grouplens_dir(tmp_path: Path, ratings: str | bytes = RATINGS, movies: bytes = MOVIES) -> Path:
  write(tmp_path, "ratings.dat", ratings)
  write(tmp_path, "movies.dat", movies)
  return tmp_path


# ---------------------------------------------------------------------------------------------
# GroupLens.


def test_grouplens_orders_by_time_then_line(tmp_path, parser):
  data = formats.load_grouplens(grouplens_dir(tmp_path))
  assert data.user_ids == ["1", "2", "10"]  # numeric, not lexicographic
  assert data.item_ids == ["10", "20", "30"]  # only rated movies, by MovieID
  # user 1: t=100 -> 30; t=200 tie: line 2 (10) before line 4 (20).
  assert seqs(data) == [[3, 1, 2], [1, 2], [3]]
  assert all(s.dtype == np.int32 for s in data.sequences)
  assert data.item_titles == ["Caf\xe9 (1999)", "Toy Story (1995)", "Heat (1995)"]
  assert data.item_tags == [("Comedy", "Drama"), ("Animation", "Children's", "Comedy"), ()]
  assert data.tag_names == ("Animation", "Children's", "Comedy", "Drama")
  assert data.source_files == (str(tmp_path / "ratings.dat"), str(tmp_path / "movies.dat"))
  assert data.name == tmp_path.name


def test_grouplens_tolerates_crlf_blank_lines_and_missing_final_newline(tmp_path, parser):
  ratings = ("2::20::5::300\r\n"
             "1::10::4::200\r\n"
             "\n"
             "1::30::3::100\n"
             "   \n"
             "1::20::5::200\n"
             "2::10::1::100\n"
             "10::30::4::50")
  data = formats.load_grouplens(grouplens_dir(tmp_path, ratings))
  assert seqs(data) == [[3, 1, 2], [1, 2], [3]]


@pytest.mark.parametrize("ratings, line, fragment", [
    ("1::10::4::1\n1::10::4\n", 2, "expected 4 fields 'UserID::MovieID::Rating::Timestamp', got 3"),
    ("1::10::4::1\n1::x::4::1\n", 2, "MovieID must be a non-negative integer, got 'x'"),
    ("1::10::4::1\n1::10::4::-5\n", 2, "Timestamp must be a non-negative integer"),
    ("1::10::4::1\n1::10:4::1\n", 2, "expected 4 fields"),
    ("1::10::4::1\n1::10::4::1::7\n", 2, "expected 4 fields"),
    ("1::10::4::1\n\n1::2::", 3, "truncated"),  # a cut-short last line
    ("1::10::4::1\n1::10::4::", 2, "truncated"),
    (b"1::10::4::1\n1::10::4::1\n1::1\xe9::4::1\n", 3, "not valid ASCII"),
    ("1::10::4::1\n2::99::4::1\n", 2, "MovieID 99 is not in"),
    ("1 :: 10 :: 4 :: 1\n", 1, "must be a non-negative integer"),
])
def test_grouplens_errors_name_file_and_line(tmp_path, parser, ratings, line, fragment):
  with pytest.raises(DataError) as e:
    formats.load_grouplens(grouplens_dir(tmp_path, ratings))
  assert f"ratings.dat:{line}:" in str(e.value)
  assert fragment in str(e.value)


def test_grouplens_empty_files(tmp_path):
  with pytest.raises(DataError, match=r"ratings.dat: file is empty"):
    formats.load_grouplens(grouplens_dir(tmp_path, "\n \n"))
  with pytest.raises(DataError, match=r"movies.dat: file is empty"):
    formats.load_grouplens(grouplens_dir(tmp_path, RATINGS, b""))


def test_grouplens_movies_errors(tmp_path):
  bad = MOVIES + b"20::Again (2000)::Drama\n"
  with pytest.raises(DataError, match=r"movies.dat:5: duplicate MovieID 20 \(first on line 2\)"):
    formats.load_grouplens(grouplens_dir(tmp_path, RATINGS, bad))
  with pytest.raises(DataError, match=r"movies.dat:2: expected 3 fields"):
    formats.load_grouplens(grouplens_dir(tmp_path, RATINGS, b"10::A::Drama\n20::B\n"))


def test_grouplens_missing_files(tmp_path):
  with pytest.raises(DataError) as e:
    formats.load_grouplens(tmp_path / "nowhere")
  message = str(e.value)
  assert f"data directory {tmp_path / 'nowhere'} does not exist" in message
  assert "DPR_DATA_DIR" in message and "--config.data.dir" in message
  assert "ratings.dat" in message and "movies.dat" in message
  write(tmp_path, "ratings.dat", RATINGS)
  with pytest.raises(DataError, match=r"has no movies.dat"):
    formats.load_grouplens(tmp_path)


# ---------------------------------------------------------------------------------------------
# SASRec.


def sasrec_dir(tmp_path: Path, sequence: str | bytes = "2 5\n1 3\n1 1\n2 2\n1 4\n",
               item_map: str = "1 20\n2 40\n3 10\n4 30\n5 50\n",
               movies: bytes | None = None) -> Path:
  write(tmp_path, "ml-1m.txt", sequence)
  write(tmp_path, "sasrec_item_to_movie.txt", item_map)
  write(tmp_path, "movies.dat", movies if movies is not None else
        b"10::Ten::Drama\n20::Twenty::Comedy|Drama\n30::Thirty::\n40::Forty::War\n50::Fifty::War\n"
        b"60::Sixty::Horror\n")
  return tmp_path


def test_sasrec_keeps_file_order_and_item_ids(tmp_path, parser):
  data = formats.load_sasrec(sasrec_dir(tmp_path))
  assert data.user_ids == ["1", "2"]
  assert seqs(data) == [[3, 1, 4], [5, 2]]
  assert data.num_items == 5
  assert data.item_ids == ["20", "40", "10", "30", "50"]
  assert data.item_titles == ["Twenty", "Forty", "Ten", "Thirty", "Fifty"]
  assert data.item_tags == [("Comedy", "Drama"), ("War",), ("Drama",), (), ("War",)]
  assert data.tag_names == ("Comedy", "Drama", "War")
  assert len(data.source_files) == 3


def test_sasrec_tabs_and_unused_map_items(tmp_path, parser):
  # Items 6 and beyond in the map but unseen in the sequences still count as items.
  data = formats.load_sasrec(sasrec_dir(tmp_path, "1\t2\n1 \t1\n", "1 20\n2 40\n3 60\n"))
  assert seqs(data) == [[2, 1]]
  assert data.num_items == 3 and data.item_ids == ["20", "40", "60"]


@pytest.mark.parametrize("sequence, line, fragment", [
    ("1 1\n1 0\n", 2, "item must be >= 1, got 0"),
    ("1 1\n0 2\n", 2, "user must be >= 1"),
    ("1 1\n1 2 3\n", 2, "expected 2 fields 'user item', got 3"),
    ("1 1\n1 2\n1", 3, "truncated"),
    ("1 1\n1 b\n", 2, "item must be a non-negative integer, got 'b'"),
    (b"1 1\n1 2\n\n1 \xff\n", 4, "byte 0xff at column 3 is not valid ASCII"),
])
def test_sasrec_sequence_errors(tmp_path, parser, sequence, line, fragment):
  with pytest.raises(DataError) as e:
    formats.load_sasrec(sasrec_dir(tmp_path, sequence))
  assert f"ml-1m.txt:{line}:" in str(e.value)
  assert fragment in str(e.value)


@pytest.mark.parametrize("item_map, fragment", [
    ("1 20\n2 40\n4 30\n5 50\n", "sasrec_item_to_movie.txt: no line for SASRec item 3"),
    ("1 20\n2 40\n3 77\n4 30\n5 50\n", "sasrec_item_to_movie.txt:3: movie id 77 is not in"),
    ("1 20\n2 40\n3 10\n4 30\n2 50\n", "sasrec_item_to_movie.txt:5: duplicate SASRec item id 2"),
    ("1 20\n2 40\n3 10\n4 30\n5 20\n", "sasrec_item_to_movie.txt:5: duplicate movie id 20"),
    ("1 20\n2 40\n3\n", "sasrec_item_to_movie.txt:3: expected 2 fields"),
])
def test_sasrec_item_map_errors(tmp_path, parser, item_map, fragment):
  with pytest.raises(DataError, match=fragment):
    formats.load_sasrec(sasrec_dir(tmp_path, item_map=item_map))


def test_sasrec_without_map(tmp_path):
  data = formats.load_sasrec(sasrec_dir(tmp_path), item_map_file=None)
  assert data.item_ids == ["1", "2", "3", "4", "5"]
  assert data.item_tags == [()] * 5 and data.tag_names == ()


def test_sasrec_real_ml1m():
  if not (ML1M_DIR / "ml-1m.txt").is_file():
    pytest.skip(f"ML-1M not available at {ML1M_DIR} (shared data folder absent)")
  data = formats.load_sasrec(ML1M_DIR)
  assert data.num_users == 6040
  assert data.num_items == 3416
  assert sum(len(s) for s in data.sequences) == 999611
  assert len(data.tag_names) == 18
  assert data.sequences[0][:3].tolist() == [1, 2, 3]
  assert all(len(s) for s in data.sequences)


# ---------------------------------------------------------------------------------------------
# CSV.

INTERACTIONS = ("user_id,movie_id,rating,timestamp\n"
                "b,10,4,5\n"
                "a,2,3.5,7\n"
                "a,10,5,7\n"
                "b,2,1,1\n"
                "a,1,2,3\n")
TAGS = ("item,tags,title\n"
        "10,Drama|Comedy,Ten\n"
        "2,,\"Two, the sequel\"\n"
        "0099,Horror,Unused\n")


def test_csv_orders_by_timestamp_then_line(tmp_path):
  data = formats.load_csv(write(tmp_path, "x.csv", INTERACTIONS))
  assert data.user_ids == ["a", "b"]
  assert data.item_ids == ["1", "2", "10"]  # numeric order
  assert seqs(data) == [[1, 2, 3], [2, 3]]
  assert data.item_tags == [()] * 3 and data.item_titles == [""] * 3
  assert data.name == "x"


def test_csv_with_tag_table(tmp_path):
  data = formats.load_csv(write(tmp_path, "x.csv", INTERACTIONS), write(tmp_path, "t.csv", TAGS))
  assert data.item_titles == ["", "Two, the sequel", "Ten"]
  assert data.item_tags == [(), (), ("Drama", "Comedy")]
  assert data.tag_names == ("Comedy", "Drama")
  assert data.source_files == (str(tmp_path / "x.csv"), str(tmp_path / "t.csv"))


def test_csv_with_movies_dat_tag_table(tmp_path):
  data = formats.load_csv(write(tmp_path, "x.csv", INTERACTIONS),
                          write(tmp_path, "movies.dat", MOVIES))
  assert data.item_tags == [(), (), ("Comedy", "Drama")]
  assert data.item_titles[2] == "Caf\xe9 (1999)"


def test_csv_gzip_pos_and_aliases(tmp_path, parser):
  text = "userId,itemId,pos\n7,30,1\n7,20,0\n3,30,0\n10,20,5\n10,30,5\n"
  path = tmp_path / "i.csv.gz"
  path.write_bytes(gzip.compress(text.encode()))
  data = formats.load_csv(path)
  assert data.user_ids == ["3", "7", "10"]
  assert data.item_ids == ["20", "30"]
  assert seqs(data) == [[2], [1, 2], [1, 2]]
  assert data.name == "i"


def test_csv_file_order_without_order_columns(tmp_path):
  data = formats.load_csv(write(tmp_path, "x.csv", "item,user\nz,u\nb,u\nk,v\n"))
  assert data.item_ids == ["b", "k", "z"]  # not all numeric: lexicographic
  assert seqs(data) == [[3, 1], [2]]


def test_csv_leading_zeros_match_tag_table(tmp_path):
  data = formats.load_csv(write(tmp_path, "x.csv", "user,item\n1,099\n1,10\n"),
                          write(tmp_path, "t.csv", TAGS))
  assert data.item_ids == ["10", "99"]
  assert data.item_tags == [("Drama", "Comedy"), ("Horror",)]


@pytest.mark.parametrize("text, line, fragment", [
    ("user,item,pos\n1,2,0\n1,3\n", 3, "expected 3 fields 'user,item,pos' (the header on line 1)"),
    ("user,item,pos\n1,2,0\n1,3,", 3, "truncated"),
    ("user,item,pos\n1,2,0\n1,3,x\n", 3, "pos must be a non-negative integer, got 'x'"),
    ("user,item,timestamp\n1,2,0\n1,3,soon\n", 3, "timestamp must be a number"),
    ("user,item,rating\n1,2,4\n1,3,good\n", 3, "rating must be a number"),
    ("user,item\n1,2\n,3\n", 3, "empty user id"),
    ("user,item\n1,2\n\n1,\n", 4, "empty item id"),
    (b"user,item\n1,2\n1,\xc3(\n", 3, "is not valid UTF-8"),
    ("user,rating\n1,2\n", 1, "lacks a required column (item: one of item, item_id"),
    ("user,item,movie_id\n1,2,3\n", 1, "both name the item column"),
])
def test_csv_errors_name_file_and_line(tmp_path, parser, text, line, fragment):
  with pytest.raises(DataError) as e:
    formats.load_csv(write(tmp_path, "x.csv", text))
  assert f"x.csv:{line}:" in str(e.value)
  assert fragment in str(e.value)


def test_csv_empty_and_header_only(tmp_path):
  with pytest.raises(DataError, match=r"x.csv: file is empty"):
    formats.load_csv(write(tmp_path, "x.csv", ""))
  with pytest.raises(DataError, match=r"x.csv: has a header on line 1 but no data rows"):
    formats.load_csv(write(tmp_path, "x.csv", "user,item\n"))
  with pytest.raises(DataError, match=r"not a valid gzip file"):
    formats.load_csv(write(tmp_path, "y.csv.gz", gzip.compress(b"user,item\n1,2\n")[:-6]))


@pytest.mark.parametrize("tags, line, fragment", [
    ("item,tags\n10,Drama\nten,Comedy\n", 3, "item id 'ten' is not a non-negative integer"),
    ("item,tags\n10,Drama\n,Comedy\n", 3, "empty item id"),
    ("item,tags\n10,Drama\n010,Comedy\n", 3, "duplicate item id '10' (first on line 2)"),
    ("item,tags\n10,Drama,extra\n", 2, "expected 2 fields"),
    ("item,genre\n10,Drama\n", 1, "lacks a required column (tags"),
])
def test_tag_table_errors(tmp_path, tags, line, fragment):
  with pytest.raises(DataError) as e:
    formats.load_csv(write(tmp_path, "x.csv", INTERACTIONS), write(tmp_path, "t.csv", tags))
  assert f"t.csv:{line}:" in str(e.value)
  assert fragment in str(e.value)


def test_tag_table_missing(tmp_path):
  with pytest.raises(DataError, match=r"tag table .*nope.csv does not exist"):
    formats.load_csv(write(tmp_path, "x.csv", INTERACTIONS), tmp_path / "nope.csv")


# ---------------------------------------------------------------------------------------------
# Dispatcher.


def test_load_dataset_dispatches(tmp_path):
  gl = tmp_path / "gl"
  gl.mkdir()
  grouplens_dir(gl)
  assert seqs(formats.load_dataset("grouplens", gl)) == [[3, 1, 2], [1, 2], [3]]
  sr = tmp_path / "sr"
  sr.mkdir()
  assert seqs(formats.load_dataset("sasrec", sasrec_dir(sr))) == [[3, 1, 4], [5, 2]]
  cv = tmp_path / "cv"
  cv.mkdir()
  write(cv, "interactions.csv", INTERACTIONS)
  write(cv, "item_tags.csv", TAGS)
  data = formats.load_dataset("csv", cv)
  assert data.item_tags[2] == ("Drama", "Comedy")
  assert formats.load_dataset("csv", cv / "interactions.csv").item_tags == [()] * 3


def test_load_dataset_errors(tmp_path):
  with pytest.raises(ConfigError, match=r"unknown data format 'parquet'"):
    formats.load_dataset("parquet", tmp_path)
  with pytest.raises(DataError) as e:
    formats.load_dataset("sasrec", tmp_path / "absent")
  assert ("does not exist; put the ML-1M files there or set DPR_DATA_DIR / --config.data.dir"
          in str(e.value))
  assert "ml-1m.txt" in str(e.value)
  with pytest.raises(DataError, match=r"has no interactions.csv"):
    formats.load_dataset("csv", tmp_path)
  with pytest.raises(DataError, match=r"has no ml-1m.txt, sasrec_item_to_movie.txt, movies.dat"):
    formats.load_dataset("sasrec", tmp_path)
