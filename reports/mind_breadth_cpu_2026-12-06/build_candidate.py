"""Builds the candidate MIND grammar of reports/experiments.md (2026-12-06 session 17): session
16's compound candidate (`reports/mind_compound_cpu_2026-12-06/mind_compound.json`) plus the new
constructions of `new_constructions.json` (written by a helper that saw only MIND's *training*
constructions), after dropping any new one that contains a surface form (the grammar's own
check) or whose words overlap a held-out construction, an
evaluation template or an existing construction too much (Jaccard >= 0.5 on word sets, slots as
words, as on 2026-12-02), with about 30% of each kind held out by a seeded draw.

    PYTHONPATH=. python reports/mind_breadth_cpu_2026-12-06/build_candidate.py OUT.json
    PYTHONPATH=. python reports/mind_breadth_cpu_2026-12-06/build_candidate.py OUT.json --without-compound

``--without-compound``: the same grammar with session 16's additions (its compound forms and
its 15 constructions) taken out again: the current grammar plus the same new constructions in
the same splits (the breadth-only arm).
"""

import json
import pathlib
import re
import sys

import numpy as np

from dpr_jax.prompts import generator

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HELD_OUT_SHARE = 0.3


def words(text: str) -> frozenset[str]:
  text = re.sub(r"\{(\w+)\}", lambda m: " slot" + m.group(1).lower().rstrip("2") + " ", text)
  return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def jaccard(a: frozenset, b: frozenset) -> float:
  return len(a & b) / max(len(a | b), 1)


def main(out: str, without_compound: bool = False) -> None:
  grammar = json.loads((ROOT / "reports/mind_compound_cpu_2026-12-06/mind_compound.json")
                       .read_text(encoding="utf-8"))
  new = json.loads((HERE / "new_constructions.json").read_text(encoding="utf-8"))
  templates = json.loads((ROOT / "dpr_jax/prompts/templates/mind.json").read_text(encoding="utf-8"))
  # What a new construction must not resemble: every existing construction (either split) and
  # every evaluation template (slots as words).
  guard = [c["text"] for kind in grammar["constructions"].values() for c in kind]
  guard += [t.replace("{tag}", "{X}") for fam in templates["templates"].values()
            for t in fam["eval"]]
  guard += [t.replace("{pos}", "{X}").replace("{neg}", "{Y}") for t in templates["combined"]]
  guard_words = [words(t) for t in guard]
  owner = {f["text"]: tag for tag, forms in grammar["surface_forms"].items() for f in forms}
  names_a_form = lambda text: any(p in owner for p in generator._phrases(  # noqa: E731
      generator._SLOT_RE.sub(" | ", text)))
  rng = np.random.default_rng(0)
  dropped = []
  for kind, texts in new.items():
    kept = []
    for text in texts:
      if names_a_form(text):
        dropped.append((kind, text))
        continue
      w = words(text)
      close = max(guard_words + [words(k) for k in kept], key=lambda g: jaccard(w, g))
      if jaccard(w, close) >= 0.5:
        dropped.append((kind, text))
        continue
      kept.append(text)
    held = set(rng.choice(len(kept), size=round(HELD_OUT_SHARE * len(kept)), replace=False))
    grammar["constructions"][kind] += [{"text": t, "split": "heldout" if i in held else "train"}
                                       for i, t in enumerate(kept)]
    print(f"{kind}: {len(kept)} new ({len(held)} held out), {len(texts) - len(kept)} dropped")
  for kind, text in dropped:
    print(f"  dropped ({kind}): {text!r}")
  if without_compound:  # session 16's additions out again: its compound forms and constructions
    del grammar["compound_forms"]
    current = json.loads((ROOT / "dpr_jax/prompts/generator/mind.json").read_text(encoding="utf-8"))
    for kind, items in grammar["constructions"].items():
      grammar["constructions"][kind] = [c for c in items if c in current["constructions"][kind]
                                        or c["text"] in new[kind]]
  pathlib.Path(out).write_text(json.dumps(grammar, indent=1, ensure_ascii=False) + "\n",
                               encoding="utf-8")


if __name__ == "__main__":
  main(sys.argv[1], "--without-compound" in sys.argv[2:])
