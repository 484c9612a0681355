"""The everyday-language evaluation set: requests written as people type them.

``dpr_jax/prompts/everyday/<domain>.jsonl`` (see the README beside it) holds, per domain, 40
positive, 40 negative, 40 combined and 20 vague requests, each labelled with the tags it wants
and avoids. It was written and committed before any change to the request reader or its
training data, and is never edited after seeing results; nothing trains on it. It is the
EVERYDAY task of docs/protocol.md (``dpr_jax.eval.steering.everyday_tasks``).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json

from dpr_jax.prompts import templates

KINDS = ("positive", "negative", "combined", "vague")


@dataclasses.dataclass(frozen=True)
class EverydayRequest:
  """One labelled request."""

  id: str
  kind: str  # one of KINDS
  text: str
  want: tuple[str, ...]  # tags asked for (positive, combined)
  avoid: tuple[str, ...]  # tags to avoid (negative, combined)


def _check(r: EverydayRequest, tags: set[str]) -> None:
  if r.kind not in KINDS:
    raise ValueError(f"{r.id}: kind {r.kind!r} is not one of {KINDS}")
  unknown = set(r.want + r.avoid) - tags
  if unknown:
    raise ValueError(f"{r.id}: unknown tags {sorted(unknown)}")
  expected = {"positive": (True, False), "negative": (False, True), "combined": (True, True),
              "vague": (False, False)}[r.kind]
  if (bool(r.want), bool(r.avoid)) != expected or set(r.want) & set(r.avoid):
    raise ValueError(f"{r.id}: want {r.want} / avoid {r.avoid} do not fit kind {r.kind!r}")


def load(domain: str) -> tuple[EverydayRequest, ...]:
  """The domain's requests, in file order, checked against its tags."""
  tags = set(templates.tags_for(domain))
  text = (importlib.resources.files("dpr_jax.prompts") / "everyday" / f"{domain}.jsonl"
          ).read_text(encoding="utf-8")
  out = []
  for line in text.splitlines():
    if line.strip():
      row = json.loads(line)
      r = EverydayRequest(row["id"], row["kind"], row["text"], tuple(row["want"]),
                          tuple(row["avoid"]))
      _check(r, tags)
      out.append(r)
  return tuple(out)
