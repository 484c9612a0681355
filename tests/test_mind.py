"""Tests of dpr_jax.data.mind on small hand-written MIND files and the real sample (if present)."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import pytest

from dpr_jax.data import formats, mind
from dpr_jax.errors import ConfigError, DataError

MIND_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mind-sample"


def news_row(news_id: str, category: str, subcategory: str, title: str) -> str:
  return "\t".join([news_id, category, subcategory, title, "An abstract.", "https://x/y.html",
                    "[]", "[]"]) + "\n"


NEWS = "".join([
    news_row("N10", "sports", "football_nfl", "Ten"),
    news_row("N2", "news", "newsus", "Two"),
    news_row("N1234", "finance", "markets", "Twelve thirty-four"),
    news_row("N123", "sports", "golf", "One twenty-three"),
    news_row("N5", "weather", "weathertopstories", "Five"),
    news_row("N7", "news", "newspolitics", "Seven (never read)"),
])

# U1: earliest impression is line 2 (history N2 N10 N2); clicks: line 2 at 9:00 AM (N123), line 3
# at 10:00 AM tie with line 1 (line 1 first: N1234, then line 3: N5, N10 repeated), N99 unknown.
# U2: only two known items -> dropped. U3: history only.
BEHAVIORS = (
    "1\tU1\t11/12/2019 10:00:00 AM\tN2 N10 N2 N5\tN1234-1 N7-0\n"
    "2\tU1\t11/12/2019 9:00:00 AM\tN2 N99 N10 N2\tN123-1 N5-0\n"
    "3\tU1\t11/12/2019 10:00:00 AM\tN2 N10\tN5-1 N10-1 N99-1\n"
    "4\tU2\t11/11/2019 1:00:00 PM\t\tN2-1 N5-1 N10-0\n"
    "5\tU3\t11/11/2019 11:59:59 PM\tN5 N2 N1234\tN7-0\n"
)


def write(directory: Path, name: str, content: str | bytes) -> Path:
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / name
  path.write_bytes(content.encode() if isinstance(content, str) else content)
  return path


def mind_dir(directory: Path, news: str | bytes = NEWS, behaviors: str | bytes = BEHAVIORS) -> Path:
  write(directory, "news.tsv", news)
  write(directory, "behaviors.tsv", behaviors)
  return directory


def load(directory: Path, **kw):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return mind.load_mind(directory, **kw)


def named(data) -> dict[str, list[str]]:
  """{user: [NewsID, ...]} of the loaded sequences."""
  return {u: [data.item_ids[i - 1] for i in s.tolist()]
          for u, s in zip(data.user_ids, data.sequences)}


# ---------------------------------------------------------------------------------------------
# Sequences, items, tags.


def test_sequences_history_then_clicks(tmp_path):
  with pytest.warns(UserWarning, match=r"^2 history/click entries refer to news missing from "
                    r"news.tsv"):
    data = mind.load_mind(mind_dir(tmp_path))
  assert named(data) == {
      "U1": ["N2", "N10", "N123", "N1234", "N5"],  # history of 9:00, clicks by time then line
      "U3": ["N5", "N2", "N1234"],
  }  # U2 has two items: dropped
  assert all(s.dtype.name == "int32" for s in data.sequences)
  assert data.name == "mind"
  assert len(data.source_files) == 2 and all(Path(p).is_absolute() for p in data.source_files)


def test_items_natural_order_titles_tags(tmp_path):
  data = load(mind_dir(tmp_path))
  # Only news in kept sequences; N2 < N5 < N10 < N123 < N1234 numerically.
  assert data.item_ids == ["N2", "N5", "N10", "N123", "N1234"]
  assert data.item_titles == ["Two", "Five", "Ten", "One twenty-three", "Twelve thirty-four"]
  assert data.item_tags == [("news",), ("weather",), ("sports",), ("sports",), ("finance",)]
  assert data.tag_names == ("finance", "news", "sports", "weather")
  assert mind.natural_key("N2") < mind.natural_key("N123") < mind.natural_key("N1234")


def test_subcategories(tmp_path):
  sub = mind.mind_subcategories(mind_dir(tmp_path))
  assert sub["N123"] == "golf" and sub["N7"] == "newspolitics" and len(sub) == 6


def test_no_warning_when_all_news_known(tmp_path):
  behaviors = "1\tU1\t11/12/2019 9:00:00 AM\tN2 N5\tN10-1\n"
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    data = mind.load_mind(mind_dir(tmp_path, behaviors=behaviors))
  assert named(data) == {"U1": ["N2", "N5", "N10"]}


def test_train_dev_merge(tmp_path):
  train_news = news_row("N1", "news", "a", "One") + news_row("N2", "sports", "b", "Two")
  dev_news = (news_row("N2", "sports", "b", "Two") + news_row("N3", "autos", "c", "Three")
              + news_row("N4", "tv", "d", "Four"))
  mind_dir(tmp_path / "MINDsmall_train", train_news,
           "1\tU1\t11/14/2019 8:00:00 AM\tN1\tN2-1\n"
           "2\tU2\t11/14/2019 8:00:00 AM\tN1 N2\tN1-1\n")
  mind_dir(tmp_path / "dev", dev_news,
           "1\tU1\t11/15/2019 8:00:00 AM\tN1\tN3-1 N2-1\n"
           "2\tU2\t11/15/2019 8:00:00 AM\tN1 N2\tN4-1\n")
  data = load(tmp_path, splits=("train", "dev"))
  assert named(data) == {"U1": ["N1", "N2", "N3"], "U2": ["N1", "N2", "N4"]}
  assert data.item_tags[data.item_ids.index("N3")] == ("autos",)
  assert len(data.source_files) == 4
  # The train split alone leaves every user with two items.
  with pytest.raises(DataError, match=r"behaviors.tsv: no user has 3 or more"):
    load(tmp_path)
  with pytest.raises(ConfigError, match="splits"):
    load(tmp_path, splits=("test",))


def test_gzip_and_crlf(tmp_path):
  mind_dir(tmp_path, gzip.compress(NEWS.encode()), BEHAVIORS.replace("\n", "\r\n").encode())
  assert named(load(tmp_path))["U1"] == ["N2", "N10", "N123", "N1234", "N5"]


def test_dispatcher(tmp_path):
  with pytest.warns(UserWarning, match="missing from news.tsv"):
    data = formats.load_dataset("mind", mind_dir(tmp_path), name="m")
  assert data.name == "m" and data.user_ids == ["U1", "U3"]
  assert "mind" in formats.FORMATS


# ---------------------------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize("news, behaviors, file, line, message", [
    (NEWS.replace("\tTen\t", "\tTen\tx\t"), BEHAVIORS, "news.tsv", 1, "expected 8 fields"),
    (NEWS + "N8\tnews\n", BEHAVIORS, "news.tsv", 7, "expected 8 fields"),
    (NEWS + news_row("N2", "news", "x", "Again"), BEHAVIORS, "news.tsv", 7,
     r"duplicate NewsID N2 \(first on line 2\)"),
    (NEWS + news_row("", "news", "x", "No id"), BEHAVIORS, "news.tsv", 7, "NewsID"),
    (NEWS + news_row("N8", "", "x", "No category"), BEHAVIORS, "news.tsv", 7, "empty Category"),
    (NEWS, BEHAVIORS.replace("\tN1234-1", " N1234-1"), "behaviors.tsv", 1, "expected 5 fields"),
    (NEWS, BEHAVIORS.replace("11/12/2019 9:00:00 AM", "2019-11-12 09:00:00"), "behaviors.tsv", 2,
     "Time '2019-11-12 09:00:00'"),
    (NEWS, BEHAVIORS.replace("11/12/2019 9:00:00 AM", "13/12/2019 9:00:00 AM"), "behaviors.tsv",
     2, "Time"),
    (NEWS, BEHAVIORS.replace("N5-1 N10-1", "N5-2 N10-1"), "behaviors.tsv", 3, "'N5-2'"),
    (NEWS, BEHAVIORS.replace("N5-1 N10-1", "N5 N10-1"), "behaviors.tsv", 3, "'N5' is not NewsID"),
    (NEWS, BEHAVIORS.replace("N5-1 N10-1", "-1 N10-1"), "behaviors.tsv", 3, "'-1'"),
    (NEWS, BEHAVIORS.replace("\tU3\t", "\t\t"), "behaviors.tsv", 5, "empty UserID"),
    (NEWS.encode().replace(b"Seven", b"Sev\xe9n"), BEHAVIORS, "news.tsv", 6,
     "byte 0xe9 at column 25 is not valid UTF-8"),
    (NEWS, BEHAVIORS.encode().replace(b"\tU2\t", b"\tU\xff\t"), "behaviors.tsv", 4,
     "byte 0xff .* UTF-8"),
], ids=["news-9-fields", "news-2-fields", "news-duplicate", "news-empty-id", "news-no-category",
        "behaviors-4-fields", "iso-time", "month-13", "label-2", "no-label", "no-news-id",
        "empty-user", "news-latin1", "behaviors-bad-byte"])
def test_malformed_lines(tmp_path, news, behaviors, file, line, message):
  mind_dir(tmp_path, news, behaviors)
  with pytest.raises(DataError, match=message) as e:
    load(tmp_path)
  assert str(e.value).startswith(f"{tmp_path / file}:{line}: ")
  assert "\n" not in str(e.value)


def test_empty_file(tmp_path):
  mind_dir(tmp_path, behaviors="\n\n")
  with pytest.raises(DataError, match=r"behaviors.tsv: file is empty"):
    load(tmp_path)


def test_truncated_last_line_hint(tmp_path):
  mind_dir(tmp_path, behaviors=BEHAVIORS + "6\tU4\t11/11/2019 1:00:00 PM")
  with pytest.raises(DataError, match=r"behaviors.tsv:6: expected 5 fields.*truncated"):
    load(tmp_path)


def test_no_user_left(tmp_path):
  mind_dir(tmp_path, behaviors="1\tU1\t11/12/2019 9:00:00 AM\tN2\tN5-1 N10-0\n")
  with pytest.raises(DataError, match=r"no user has 3 or more .*1 users read, all dropped"):
    load(tmp_path)


def test_missing_files(tmp_path):
  hint = r"https://msnews.github.io/.*DPR_DATA_DIR or --config.data.dir"
  with pytest.raises(DataError, match=rf"{tmp_path / 'nope'} does not exist.*news.tsv and "
                     rf"behaviors.tsv.*{hint}"):
    load(tmp_path / "nope")
  with pytest.raises(DataError, match=rf"neither news.tsv and behaviors.tsv nor a train split "
                     rf"folder \(MINDsmall_train/.*{hint}"):
    load(tmp_path)
  write(tmp_path, "news.tsv", NEWS)
  with pytest.raises(DataError, match=rf"has news.tsv but no behaviors.tsv.*{hint}"):
    load(tmp_path)
  write(tmp_path / "sub" / "MINDsmall_train", "news.tsv", NEWS)
  with pytest.raises(DataError, match=rf"MINDsmall_train has no behaviors.tsv.*{hint}"):
    load(tmp_path / "sub")
  with pytest.raises(DataError, match=hint):
    formats.load_dataset("mind", tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# The real sample and the presets.


def test_real_sample():
  if not MIND_SAMPLE.is_dir():
    pytest.skip(f"MIND sample not present at {MIND_SAMPLE}")
  with pytest.warns(UserWarning, match="refer to news missing from news.tsv"):
    data = formats.load_dataset("mind", MIND_SAMPLE)
  assert data.num_users > 100 and data.num_items > 100
  assert len(data.tag_names) == 15 and "sports" in data.tag_names
  assert data.tag_matrix()[1:].sum(axis=1).tolist() == [1] * data.num_items
  assert min(len(s) for s in data.sequences) >= 3
  assert all(len(set(s.tolist())) == len(s) for s in data.sequences)
  assert all(1 <= s.min() and s.max() <= data.num_items for s in data.sequences)
  assert len(set(mind.mind_subcategories(MIND_SAMPLE).values())) == 143


@pytest.mark.parametrize("module", ["mind_sasrec", "mind_gru4rec"])
def test_presets(module):
  import importlib
  from dpr_jax.config import validate
  preset = importlib.import_module(module)  # configs/ is on sys.path (conftest.py)
  c = preset.get_config()
  validate(c)
  assert (c.data.format, c.data.name, c.data.max_len, c.dpr.domain) == ("mind", "mind", 50, "mind")
  assert c.run.dir == f"runs/{module}" and c.stages == "1"
  assert c.model.name == module.removeprefix("mind_")
  assert preset.get_config("dpr").stages == "1,2,3"


# ------------------------------------------------------------------------------ MIND-small fetch
def _mind_zip(path: Path, members: dict[str, str]) -> str:
  import zipfile

  with zipfile.ZipFile(path, "w") as zf:
    for name, content in members.items():
      zf.writestr(name, content)
  return path.as_uri()


def test_mind_small_is_fetched_once_and_loads(tmp_path):
  from dpr_jax.data import fetch

  url = _mind_zip(tmp_path / "MINDsmall_train.zip", {"news.tsv": NEWS, "behaviors.tsv": BEHAVIORS,
                                                    "entity_embedding.vec": ""})
  cache = tmp_path / "cache"
  root = fetch.ensure_mind_small(cache, urls={"train": url})
  assert root == cache / "mind-small"
  assert sorted(p.name for p in root.iterdir()) == ["MINDsmall_train"]  # no leftovers
  assert [s.tolist() for s in load(root).sequences] == [
      s.tolist() for s in load(mind_dir(tmp_path / "plain")).sequences]

  def no_network(url, timeout):
    raise AssertionError("downloaded twice")

  assert fetch.ensure_mind_small(cache, urls={"train": url}, opener=no_network) == root


def test_mind_small_fetch_errors_leave_nothing(tmp_path):
  import urllib.error

  from dpr_jax.data import fetch

  def offline(url, timeout):
    raise urllib.error.URLError("no route to host")

  cache = tmp_path / "cache"
  with pytest.raises(DataError, match=r"could not be downloaded \(network error: no route to host"
                                      r"\); download MIND-small"):
    fetch.ensure_mind_small(cache, opener=offline)
  url = _mind_zip(tmp_path / "bad.zip", {"news.tsv": NEWS})  # no behaviors.tsv
  with pytest.raises(DataError, match="the archive has no behaviors.tsv"):
    fetch.ensure_mind_small(cache, urls={"train": url})
  (tmp_path / "junk.zip").write_bytes(b"not a zip")
  with pytest.raises(DataError, match="not a valid zip archive"):
    fetch.ensure_mind_small(cache, urls={"train": (tmp_path / "junk.zip").as_uri()})
  assert list((cache / "mind-small").iterdir()) == []
