"""Prompt embeddings, computed once per prompt set and stored with the dataset artefacts.

A :class:`PromptBank` holds every prompt of a domain (all families, both splits) with its
embedding from the frozen text encoder. It is cached as ``prompts-<domain>-<key>.npz`` plus a
JSON manifest in the data cache, where ``key`` hashes the prompt texts and the encoder's name:
training and evaluation read the cache and never run the encoder (so an accelerator machine needs
neither the encoder weights nor its tokenizer). Item text embeddings (title and tags), used by the
text-rerank baseline, are cached the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Sequence

import numpy as np

from dpr_jax import atomic
from dpr_jax.prompts import templates
from dpr_jax.prompts.features import prompt_features

FAMILIES = ("positive", "negative", "nuanced")


@dataclasses.dataclass(frozen=True)
class PromptBank:
  """P prompts and their D_t-dimensional embeddings, in a fixed order."""

  texts: tuple[str, ...]
  tags: tuple[tuple[str, ...], ...]
  polarity: np.ndarray  # int8[P]: +1 positive / nuanced, -1 negative
  family: tuple[str, ...]
  split: tuple[str, ...]
  embeddings: np.ndarray  # float32[P, D_t], unit norm
  manifest: dict = dataclasses.field(default_factory=dict, compare=False)

  @property
  def features(self) -> np.ndarray:
    """float32[P, D_t + 1]: what the DPR head reads (see dpr_jax.prompts.features)."""
    return prompt_features(self.embeddings, self.texts)

  def select(self, family: str, split: str, tag: str | None = None) -> np.ndarray:
    """int[n]: rows of ``family`` and ``split`` (carrying ``tag`` when given), in bank order."""
    return np.array([i for i in range(len(self.texts))
                     if self.family[i] == family and self.split[i] == split
                     and (tag is None or tag in self.tags[i])], np.int64)

  def tag_matrix(self, tag_names: Sequence[str]) -> np.ndarray:
    """bool[P, T]: which tags each prompt means."""
    index = {t: j for j, t in enumerate(tag_names)}
    m = np.zeros((len(self.texts), len(tag_names)), bool)
    for i, tags in enumerate(self.tags):
      for t in tags:
        m[i, index[t]] = True
    return m


def _cache_key(texts: Sequence[str], encoder_name: str) -> str:
  h = hashlib.sha256(encoder_name.encode())
  for t in texts:
    h.update(b"\0" + t.encode())
  return h.hexdigest()[:16]


def _cached_embeddings(cache_dir: pathlib.Path, stem: str, texts: Sequence[str],
                       encoder_path: str | None, batch_size: int = 64) -> tuple[np.ndarray, dict]:
  """float32[n, D_t] for ``texts``, from ``<cache_dir>/<stem>-<key>.npz`` or freshly encoded."""
  from dpr_jax.prompts.encoder import encoder_id

  name = encoder_id(encoder_path)  # includes the weights' sha256
  key = _cache_key(texts, name)
  path = cache_dir / f"{stem}-{key}.npz"
  meta_path = path.with_suffix(".json")
  if path.exists() and meta_path.exists():
    with path.open("rb") as f, np.load(f) as z:  # a file object: np.load cannot open gs://
      return z["embeddings"], json.loads(meta_path.read_text(encoding="utf-8"))
  from dpr_jax.prompts.encoder import TextEncoder

  encoder = TextEncoder.from_pretrained(encoder_path)
  embeddings = encoder.encode(list(texts), batch_size=batch_size).astype(np.float32)
  meta = {"encoder": name, "count": len(texts), "dim": int(embeddings.shape[1]), "key": key}
  atomic.write_with(path, lambda f: np.savez(f, embeddings=embeddings))
  atomic.write_text(meta_path, json.dumps(meta))
  return embeddings, meta


def build_bank(domain: str, tag_names: Sequence[str], cache_dir: str | pathlib.Path,
               encoder_path: str | None = None) -> PromptBank:
  """Every prompt of ``domain`` for ``tag_names`` with its embedding (cached)."""
  prompts = templates.all_prompts(domain, tag_names)
  texts = [p.text for p in prompts]
  embeddings, meta = _cached_embeddings(atomic.as_path(cache_dir), f"prompts-{domain}", texts,
                                        encoder_path)
  return PromptBank(
      texts=tuple(texts), tags=tuple(tuple(p.tags) for p in prompts),
      polarity=np.array([p.polarity for p in prompts], np.int8),
      family=tuple(p.family for p in prompts), split=tuple(p.split for p in prompts),
      embeddings=embeddings, manifest=meta)


def item_texts(titles: Sequence[str], item_tags: np.ndarray, tag_names: Sequence[str]) -> list[str]:
  """"<title> (<tag>, <tag>)" per item 1..N (the text-rerank baseline's item descriptions)."""
  out = []
  for i, title in enumerate(titles, start=1):
    tags = ", ".join(t for t, on in zip(tag_names, item_tags[i]) if on)
    out.append(f"{title or f'item {i}'} ({tags})" if tags else (title or f"item {i}"))
  return out


def item_text_embeddings(titles: Sequence[str], item_tags: np.ndarray, tag_names: Sequence[str],
                         cache_dir: str | pathlib.Path, stem: str,
                         encoder_path: str | None = None) -> np.ndarray:
  """float32[N + 1, D_t]: embedded item texts; row 0 (padding) is zero."""
  emb, _ = _cached_embeddings(atomic.as_path(cache_dir), f"items-{stem}",
                              item_texts(titles, item_tags, tag_names), encoder_path)
  return np.concatenate([np.zeros((1, emb.shape[1]), np.float32), emb])


def text_features(texts: Sequence[str], cache_dir: str | pathlib.Path, stem: str,
                  encoder_path: str | None = None) -> np.ndarray:
  """float32[n, D_t + 1]: head features of arbitrary texts (cached like the bank), e.g. the
  parts of the COMBINED task's requests."""
  emb, _ = _cached_embeddings(atomic.as_path(cache_dir), stem, list(texts), encoder_path)
  return prompt_features(emb, texts)
