"""Bad input, one case a test: a user mistake gives one ``error:`` line naming the file, line or
config key, a non-zero exit status (2), no traceback, and leaves nothing half-written.

Four tables:

* ``CLI_CASES`` run the real command line (``python -m dpr_jax.launch --config configs/tiny.py
  ...``) in subprocesses, three at a time (one module fixture), and check stderr, the exit status
  and what is left on disk;
* ``BENCH_CASES`` do the same for ``python -m dpr_jax.bench <suite>`` (no report written);
* ``DATA_CASES`` feed malformed files of every supported format to ``prepare`` in-process (the
  path the command line takes, without the start-up cost) and check the DataError and that the
  data cache stays empty;
* the remaining tests cover what has no command-line switch: a download whose checksum does not
  match, and prompts (empty, whitespace-only, too long for the encoder).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import importlib.util
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import ROOT
from dpr_jax.errors import DataError, UserError

# ---------------------------------------------------------------------------------------------
# Input files shared by the tables.

RATINGS = "1::10::4::1\n1::20::4::2\n1::30::4::3\n2::10::4::1\n2::20::4::2\n2::30::4::3\n"
MOVIES = b"10::Ten::Drama\n20::Twenty::Comedy\n30::Thirty::War\n"
NEWS = "".join("\t".join([n, c, "sub", f"Title {n}", "abstract", "url", "[]", "[]"]) + "\n"
               for n, c in (("N1", "sports"), ("N2", "news"), ("N3", "sports"), ("N4", "finance")))
BEHAVIORS = ("1\tU1\t11/11/2019 9:00:00 AM\tN1 N2\tN3-1 N4-0\n"
             "2\tU1\t11/11/2019 10:00:00 AM\tN1 N2\tN4-1\n")
INTERACTIONS = "user,item\n1,1\n1,2\n1,3\n2,1\n2,2\n2,3\n"


def write(directory: Path, files: dict[str, str | bytes]) -> Path:
  directory.mkdir(parents=True, exist_ok=True)
  for name, content in files.items():
    (directory / name).write_bytes(content.encode() if isinstance(content, str) else content)
  return directory


def files_under(path: Path) -> list[str]:
  return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) \
      if path.exists() else []


# ---------------------------------------------------------------------------------------------
# Through the command line.


@dataclasses.dataclass(frozen=True)
class CliCase:
  name: str
  args: tuple[str, ...]
  error: str  # regex the last stderr line must match after "error: "
  # "config": nothing written at all; "data": no data cache, checkpoint or result; "after data":
  # found once the (complete) data cache is written, no checkpoint or result; "checkpoint"
  kind: str = "config"
  setup: Callable[[Path], None] | None = None  # prepares the case folder
  devices: int = 1
  env: tuple[tuple[str, str], ...] = ()  # extra environment variables


# Every HTTPS request goes to a closed local port: a machine without network, reproducibly.
OFFLINE = (("https_proxy", "http://127.0.0.1:9"), ("HTTPS_PROXY", "http://127.0.0.1:9"),
           ("no_proxy", ""), ("NO_PROXY", ""))


def _incompatible_checkpoint(case: Path) -> None:
  """A stage-1 checkpoint whose recorded fingerprint belongs to another model."""
  from dpr_jax.checkpoint import RunCheckpoints

  ckpts = RunCheckpoints(case / "run" / "stage1" / "checkpoints")
  ckpts.save_latest(12, {"w": np.zeros(3, np.float32)},
                    {"fingerprint": {"model": {"name": "gru4rec"}}, "done": False})
  ckpts.wait()
  ckpts.close()


def _mind(case: Path) -> None:
  write(case / "mind", {"news.tsv": NEWS,
                        "behaviors.tsv": BEHAVIORS.replace("10:00:00 AM", "10:00 AM")})


CLI_CASES = [
    CliCase("typo in a key", ("--config.train.lrr=1",),
            r'unknown config key --config\.train\.lrr \(lrr Did you mean "lr"'),
    CliCase("wrong type", ("--config.train.lr=fast",),
            r"flag --config\.train\.lr=fast: could not convert string to float"),
    CliCase("bad value", ("--config.model.name=bert",), r"config\.model\.name: must be one of"),
    CliCase("eval cutoffs without 10", ("--config.eval.ks=(5,)",),
            r"config\.eval\.ks: must include 10"),
    CliCase("unknown stage", ("--config.stages=4",), r"config\.stages='4': give a comma list"),
    CliCase("config file missing", ("--config=configs/nope.py",),
            r"--config configs/nope\.py: no such config file"),
    CliCase("stray argument", ("extra",), r"unexpected arguments: extra"),
    CliCase("mesh does not divide the devices", ("--config.mesh.model=3",),
            r"config\.mesh\.model=3 does not divide the 1 available devices"),
    CliCase("batch not divisible by the data axis", ("--config.train.batch_size=33",),
            r"config\.train\.batch_size=33 is not divisible by the data mesh axis \(2\)",
            devices=2),
    CliCase("batch larger than the data", ("--config.train.batch_size=100000",),
            r"config\.train\.batch_size=100000 exceeds the 400 training users",
            kind="after data"),
    CliCase("run dir under a file", ("--config.run.dir={case}/afile/run",),
            r"config\.run\.dir=\S+/afile/run: \S+/afile is a file, not a folder",
            setup=lambda case: write(case, {"afile": "x"})),
    CliCase("data dir does not exist",
            ("--config.data.format=sasrec", "--config.data.dir={case}/absent"),
            r"data directory \S+/absent does not exist; .*ml-1m\.txt", kind="data"),
    CliCase("the main command offline, no local files", ("--config=configs/ml1m_sasrec.py",),
            r"the ML-1M benchmark files are not in \S+/cache/ml-1m-sasrec and "
            r"https://raw\.githubusercontent\.com/kang205/SASRec/[0-9a-f]{40}/data/ml-1m\.txt could "
            r"not be downloaded \(.+\); put ml-1m\.txt, sasrec_item_to_movie\.txt, movies\.dat in "
            r"a folder and point DPR_DATA_DIR or --config\.data\.dir at it", kind="data",
            env=OFFLINE),
    CliCase("csv without a data dir", ("--config.data.format=csv",),
            r"no data directory for format 'csv'", kind="data"),
    CliCase("grouplens malformed line",
            ("--config.data.format=grouplens", "--config.data.dir={case}/gl"),
            r"\S+/gl/ratings\.dat:2: expected 4 fields 'UserID::MovieID::Rating::Timestamp', got 3",
            kind="data", setup=lambda case: write(case / "gl", {
                "ratings.dat": "1::10::4::1\n1::20::4\n", "movies.dat": MOVIES})),
    CliCase("MIND behaviors.tsv bad time", ("--config.data.format=mind",
                                            "--config.data.dir={case}/mind"),
            r"\S+/mind/behaviors\.tsv:2: Time '11/11/2019 10:00 AM' is not like", kind="data",
            setup=_mind),
    CliCase("users with fewer than 3 interactions",
            ("--config.data.format=csv", "--config.data.dir={case}/csv"),
            r"\S+/csv/interactions\.csv: user 2 has 2 interaction\(s\); leave-one-out needs at "
            r"least 3", kind="data",
            setup=lambda case: write(case / "csv", {"interactions.csv": INTERACTIONS[:-4]})),
    CliCase("no item has a tag (DPR stages)",
            ("--config.data.format=csv", "--config.data.dir={case}/csv", "--config.stages=1,2,3"),
            r"\S+/csv/item_tags\.csv: no item has a tag, but stages 2-3 steer", kind="after data",
            setup=lambda case: write(case / "csv", {"interactions.csv": INTERACTIONS,
                                                    "item_tags.csv": "item,tags\n9,Drama\n1,\n"})),
    CliCase("data cache under a file", ("--config.data.cache_dir={case}/afile/cache",),
            r"cannot write the data cache \S+/afile/cache/\S+ \(Not a directory\)", kind="data",
            setup=lambda case: write(case, {"afile": "x"})),
    CliCase("checkpoint from an incompatible config", (),
            r"checkpoint in \S+/run/stage1/checkpoints was made with another model, dataset or "
            r"optimizer .* use a fresh --config\.run\.dir", kind="checkpoint",
            setup=_incompatible_checkpoint),
]


def _launch(case: CliCase, directory: Path) -> subprocess.CompletedProcess:
  if case.setup is not None:
    case.setup(directory)
  args = [a.format(case=directory) for a in case.args]
  config = next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), "configs/tiny.py")
  args = [a for a in args if not a.startswith("--config=")]
  defaults = [f"--config.run.dir={directory / 'run'}",
              f"--config.data.cache_dir={directory / 'cache'}", "--config.run.progress=False"]
  keys = {a.split("=")[0] for a in args}
  args = [d for d in defaults if d.split("=")[0] not in keys] + args
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={case.devices}")
  env.pop("DPR_DATA_DIR", None)
  env.update(case.env)
  return subprocess.run([sys.executable, "-m", "dpr_jax.launch", "--config", config, *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
  """Every CLI case, run three at a time (each is mostly interpreter and JAX start-up)."""
  base = tmp_path_factory.mktemp("cli")
  dirs = {c.name: base / f"case{i}" for i, c in enumerate(CLI_CASES)}
  for d in dirs.values():
    d.mkdir()
  for c in CLI_CASES:  # setups in this process, one at a time (some use orbax)
    if c.setup is not None:
      c.setup(dirs[c.name])
  plain = [dataclasses.replace(c, setup=None) for c in CLI_CASES]
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    futures = {c.name: pool.submit(_launch, c, dirs[c.name]) for c in plain}
    return {name: (f.result(), dirs[name]) for name, f in futures.items()}


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_command_line(case: CliCase, cli_runs):
  out, directory = cli_runs[case.name]
  assert out.returncode == 2, out.stderr[-3000:]
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: "), last
  assert re.search(case.error, last), last
  assert "\n" not in last
  # Nothing half-written: no temporary files anywhere, and per kind no artefacts at all.
  written = files_under(directory)
  assert not [f for f in written if any(part.startswith(".") for part in Path(f).parts)], written
  run, cache = directory / "run", directory / "cache"
  if case.kind == "config":
    assert not run.exists() and not cache.exists(), written
  elif case.kind in ("data", "after data"):
    if case.kind == "data":
      assert files_under(cache) == [], files_under(cache)
    assert not list(run.glob("stage*")) and not list(run.glob("results*"))
  else:  # checkpoint: the refused checkpoint stays as it was, nothing else is saved
    assert [p.name for p in (run / "stage1" / "checkpoints" / "latest").iterdir()] == ["12"]
    assert not (run / "stage1" / "checkpoints" / "best").exists() or not list(
        (run / "stage1" / "checkpoints" / "best").iterdir())
    assert not list(run.glob("results*"))


# ---------------------------------------------------------------------------------------------
# The benchmark command line (python -m dpr_jax.bench <suite> ...): the same one-line contract.

# (suite and arguments, regex of the last stderr line)
BENCH_CASES = [
    (("train", "--config", "configs/nope.py"), r"^error: --config configs/nope\.py: no such config"),
    (("train", "--steps", "0"), r"^python -m dpr_jax\.bench train: error: argument --steps: must"
                                r" be >= 1, got 0$"),
    (("eval", "--users", "many"), r"error: argument --users: invalid int value: 'many'$"),
    (("eval", "--config", "configs/ml1m_gru4rec.py", "--models", "sasrec"),
     r"^error: no --config preset is one of --models sasrec \(the presets hold gru4rec\)$"),
    (("peer", "--set", "model.embed_dimm=3"),
     r"^error: --set model\.embed_dimm=3: unknown config key 'model\.embed_dimm'$"),
    (("peer", "--set", "model.embed_dim=wide"),
     r"^error: --set model\.embed_dim=wide: cannot convert 'wide' to int$"),
]
if importlib.util.find_spec("torch") is None:  # torch is bench-only: say what to install
  BENCH_CASES.append((("peer",), r"^error: the PyTorch peer needs torch, .*pip install"))


@pytest.fixture(scope="module")
def bench_runs(tmp_path_factory) -> list[tuple[subprocess.CompletedProcess, Path]]:
  base = tmp_path_factory.mktemp("bench")
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")

  def run(i: int) -> tuple[subprocess.CompletedProcess, Path]:
    out = base / f"case{i}"
    return subprocess.run([sys.executable, "-m", "dpr_jax.bench", *BENCH_CASES[i][0], "--out",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300), out

  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    return list(pool.map(run, range(len(BENCH_CASES))))


@pytest.mark.parametrize("index", range(len(BENCH_CASES)),
                         ids=[" ".join(c[0]) for c in BENCH_CASES])
def test_bench_command_line(index, bench_runs):
  out, folder = bench_runs[index]
  assert out.returncode == 2, out.stderr[-3000:]
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  assert re.search(BENCH_CASES[index][1], out.stderr.strip().splitlines()[-1]), out.stderr[-500:]
  assert not folder.exists()  # no report, not even a partial one


# ---------------------------------------------------------------------------------------------
# Malformed files of every format, through prepare() in-process.


def _news(rows: str) -> dict[str, str | bytes]:
  return {"news.tsv": rows, "behaviors.tsv": BEHAVIORS}


# (name, format, files written into the data folder, config overrides, expected message regex)
DATA_CASES = [
    ("grouplens field count", "grouplens", {"ratings.dat": "1::10::4::1\n1::20::4\n",
                                            "movies.dat": MOVIES}, {},
     r"/ratings\.dat:2: expected 4 fields 'UserID::MovieID::Rating::Timestamp', got 3"),
    ("grouplens truncated last line", "grouplens", {"ratings.dat": RATINGS + "3::10::",
                                                    "movies.dat": MOVIES}, {},
     r"/ratings\.dat:7: .*\(the last line has no newline: is the file truncated\?\)"),
    ("grouplens movies.dat field count", "grouplens",
     {"ratings.dat": RATINGS, "movies.dat": b"10::Ten::Drama\n20::Twenty\n"}, {},
     r"/movies\.dat:2: expected 3 fields 'MovieID::Title::Genres', got 2"),
    ("grouplens unknown movie", "grouplens",
     {"ratings.dat": RATINGS + "2::99::4::9\n", "movies.dat": MOVIES}, {},
     r"/ratings\.dat:7: MovieID 99 is not in \S+/movies\.dat"),
    ("sasrec non-integer item", "sasrec",
     {"ml-1m.txt": "1 1\n1 x\n", "sasrec_item_to_movie.txt": "1 10\n", "movies.dat": MOVIES}, {},
     r"/ml-1m\.txt:2: item must be a non-negative integer, got 'x'"),
    ("sasrec truncated", "sasrec",
     {"ml-1m.txt": "1 1\n1 2\n1", "sasrec_item_to_movie.txt": "1 10\n2 20\n", "movies.dat": MOVIES},
     {}, r"/ml-1m\.txt:3: expected 2 fields 'user item', got 1 \(the last line has no newline"),
    ("sasrec map: movie id not in movies.dat", "sasrec",
     {"ml-1m.txt": "1 1\n1 2\n1 3\n", "sasrec_item_to_movie.txt": "1 10\n2 20\n3 77\n",
      "movies.dat": MOVIES}, {},
     r"/sasrec_item_to_movie\.txt:3: movie id 77 is not in movies\.dat"),
    ("sasrec map: item id without a line", "sasrec",
     {"ml-1m.txt": "1 1\n1 2\n1 3\n", "sasrec_item_to_movie.txt": "1 10\n2 20\n",
      "movies.dat": MOVIES}, {},
     r"/sasrec_item_to_movie\.txt: no line for SASRec item 3"),
    ("csv field count", "csv", {"interactions.csv": "user,item,pos\n1,2,0\n1,3\n"}, {},
     r"/interactions\.csv:3: expected 3 fields 'user,item,pos' \(the header on line 1\), got 2"),
    ("csv missing column", "csv", {"interactions.csv": "user,rating\n1,2\n"}, {},
     r"/interactions\.csv:1: header 'user,rating' lacks a required column \(item: one of"),
    ("csv non-UTF-8 byte", "csv", {"interactions.csv": b"user,item\n1,2\n1,\xc3(\n"}, {},
     r"/interactions\.csv:3: byte 0xc3 at column 3 is not valid UTF-8 text"),
    ("csv truncated gzip", "csv",
     {"interactions.csv.gz": gzip.compress(INTERACTIONS.encode())[:-6]}, {},
     r"/interactions\.csv\.gz: not a valid gzip file"),
    ("csv tag table bad item id", "csv",
     {"inter.csv": INTERACTIONS, "tags.csv": "item,tags\n1,Drama\nten,Comedy\n"},
     {"interactions_file": "inter.csv", "tags_file": "tags.csv"},
     r"/tags\.csv:3: item id 'ten' is not a non-negative integer"),
    ("csv tag table missing", "csv", {"inter.csv": INTERACTIONS},
     {"interactions_file": "inter.csv", "tags_file": "nope.csv"},
     r"tag table \S+/nope\.csv does not exist"),
    ("MIND news.tsv field count", "mind", _news(NEWS + "N9\tsports\n"), {},
     r"/news\.tsv:5: expected 8 fields 'NewsID\tCategory\t.*', got 2"),
    ("MIND news.tsv non-UTF-8 byte", "mind", _news(NEWS.encode() + b"N\xff\tx\n"), {},
     r"/news\.tsv:5: byte 0xff at column 2 is not valid UTF-8 text"),
    ("MIND behaviors.tsv unlabelled impression", "mind",
     {"news.tsv": NEWS, "behaviors.tsv": BEHAVIORS + "3\tU2\t11/11/2019 9:00:00 AM\t\tN1\n"}, {},
     r"/behaviors\.tsv:3: impression 'N1' is not NewsID-1 \(clicked\) or NewsID-0"),
    ("MIND behaviors.tsv truncated", "mind",
     {"news.tsv": NEWS, "behaviors.tsv": BEHAVIORS + "3\tU2\t11/11/2019"}, {},
     r"/behaviors\.tsv:3: expected 5 fields .* got 3 \(the last line has no newline"),
    ("MIND folder without behaviors.tsv", "mind", {"news.tsv": NEWS}, {},
     r"data directory \S+ has news\.tsv but no behaviors\.tsv"),
    ("users with fewer than 3 interactions", "sasrec",
     {"ml-1m.txt": "1 1\n1 2\n1 3\n2 1\n", "sasrec_item_to_movie.txt": "1 10\n2 20\n3 30\n",
      "movies.dat": MOVIES}, {},
     r"/ml-1m\.txt: user 2 has 1 interaction\(s\); leave-one-out needs at least 3"),
]


@pytest.mark.parametrize("name, fmt, files, overrides, error", DATA_CASES,
                         ids=[c[0] for c in DATA_CASES])
def test_malformed_data(name, fmt, files, overrides, error, tmp_path, tiny_config):
  from dpr_jax.data.prepare import prepare

  data_dir = write(tmp_path / "data", files)
  config = tiny_config(**{"data.format": fmt, "data.dir": str(data_dir), "data.name": "t",
                          **{f"data.{k}": v for k, v in overrides.items()}})
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # MIND's "entries refer to missing news" is not the point
    with pytest.raises(DataError) as e:
      prepare(config.data)
  message = str(e.value)
  assert re.search(error, message), message
  assert "\n" not in message
  assert files_under(tmp_path / "cache") == []
  assert files_under(tmp_path / "data") == sorted(files)  # inputs untouched, nothing added


def test_items_without_tags_are_named_in_a_warning(tmp_path, tiny_config):
  from dpr_jax.data.prepare import prepare

  data_dir = write(tmp_path / "data", {"interactions.csv": INTERACTIONS,
                                       "item_tags.csv": "item,tags\n1,Drama\n2,\n"})
  config = tiny_config(**{"data.format": "csv", "data.dir": str(data_dir), "data.name": "t"})
  with pytest.warns(UserWarning, match=r"/item_tags\.csv: 2 of 3 items have no tags .*first: "
                    r"item '2'"):
    split = prepare(config.data)
  assert split.item_tags[1:].sum(axis=1).tolist() == [1, 0, 0]


# ---------------------------------------------------------------------------------------------
# A download whose checksum does not match.


def test_download_with_a_wrong_checksum_leaves_nothing(tmp_path):
  import zipfile

  from dpr_jax.data import fetch

  archive = tmp_path / "ml-1m.zip"
  with zipfile.ZipFile(archive, "w") as zf:
    zf.writestr("ml-1m/ratings.dat", RATINGS)
    zf.writestr("ml-1m/movies.dat", MOVIES)
  cache = tmp_path / "cache"
  with pytest.raises(DataError) as e:
    fetch.ensure_ml1m(cache, url=archive.as_uri(), md5=None, sha256="0" * 64)
  assert re.fullmatch(r"checksum mismatch for file://\S+/ml-1m\.zip: expected sha256 0{64}, got "
                      r"[0-9a-f]{64}; the partial file was removed", str(e.value)), str(e.value)
  assert list(cache.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Prompts (the path `python -m dpr_jax.recommend` takes: check_prompt, then TextEncoder.encode).


@pytest.mark.parametrize("text, error", [
    ("", r"^empty prompt: give a few words"),
    ("   \n\t ", r"^empty prompt \('   \\n\\t '\): give a few words"),
    (None, r"^prompt is not a string: NoneType"),
])
def test_empty_or_non_string_prompt(text, error):
  from dpr_jax.prompts.encoder import check_prompt

  with pytest.raises(UserError, match=error):
    check_prompt(text)
  assert check_prompt("  no horror tonight \n") == "no horror tonight"


@pytest.fixture(scope="module")
def small_encoder():
  """The real tokenizer with a tiny random BERT and a 16-token limit (runs in milliseconds)."""
  import jax

  from dpr_jax.prompts import encoder as enc

  try:
    folder = enc.default_model_dir()
  except UserError as e:
    pytest.skip(str(e))
  config = enc.BertConfig(vocab_size=30522, hidden_size=8, num_layers=1, num_heads=2,
                          intermediate_size=16, max_position_embeddings=64)
  dummy = jax.numpy.zeros((1, 1), jax.numpy.int32)
  params = enc.BertModel(config).init(jax.random.PRNGKey(0), dummy, dummy)["params"]
  return enc.TextEncoder(config, params, enc._load_tokenizer(folder, 16), 16)


def test_prompt_longer_than_the_encoder_limit_is_truncated_with_a_warning(small_encoder):
  long = "a quiet film about the sea and old friends, " * 5
  with pytest.warns(UserWarning, match=r"1 prompt\(s\) longer than the text encoder's 16-token "
                    r"limit were truncated \(first at index 1\)"):
    out = small_encoder.encode(["short", long])
  assert out.shape == (2, 8) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
  ids, truncated = small_encoder.tokenize([long])
  assert truncated == [0] and len(ids[0]) == 16
  with pytest.raises(UserError, match=r"empty prompt at index 1"):
    small_encoder.encode(["fine", "  "])
