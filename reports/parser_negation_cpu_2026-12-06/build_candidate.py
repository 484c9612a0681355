"""Builds the candidate ML-1M grammar of reports/experiments.md (2026-12-06 session 18): the
current grammar (`dpr_jax/prompts/generator/ml-1m.json`) plus the constructions of
`new_constructions.json`, written by a helper that saw only ML-1M's *training* constructions:
wishes that hold a negation word, avoids that hold none, combined requests whose wish holds one,
vague requests that hold one.

A new construction is dropped before any run when it breaks its kind's brief (a positive or
vague one without a negation word, a negative one with one), contains a surface form (the
grammar's own check), or its words overlap an existing construction (either split), an
evaluation template or another new one too much (Jaccard >= 0.5 on word sets, slots as words,
as on 2026-12-02 and in session 17). About 30% of each kind's kept ones are held out by a seeded
draw, like the rest of the grammar.

    PYTHONPATH=. python reports/parser_negation_cpu_2026-12-06/build_candidate.py OUT.json
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
# A negation word or contraction, as counted in reports/experiments.md (session 17).
NEGATION = re.compile(r"\b(not|no|never|nothing|none|nobody|without|hardly|neither|nor|cannot)\b"
                      r"|n't\b|\bno one\b")
# Which kinds must (True) or must not (False) hold a negation word; combined: free.
BRIEF = {"positive": True, "negative": False, "vague": True}


def words(text: str) -> frozenset[str]:
  text = re.sub(r"\{(\w+)\}", lambda m: " slot" + m.group(1).lower().rstrip("2") + " ", text)
  return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def jaccard(a: frozenset, b: frozenset) -> float:
  return len(a & b) / max(len(a | b), 1)


def main(out: str) -> None:
  grammar = json.loads((ROOT / "dpr_jax/prompts/generator/ml-1m.json").read_text(encoding="utf-8"))
  new = json.loads((HERE / "new_constructions.json").read_text(encoding="utf-8"))
  templates = json.loads((ROOT / "dpr_jax/prompts/templates/ml-1m.json")
                         .read_text(encoding="utf-8"))
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
      brief = BRIEF.get(kind)
      if brief is not None and bool(NEGATION.search(text.lower())) != brief:
        dropped.append((kind, "brief", text))
        continue
      if names_a_form(text):
        dropped.append((kind, "form", text))
        continue
      w = words(text)
      close = max(guard_words + [words(k) for k in kept], key=lambda g: jaccard(w, g))
      if jaccard(w, close) >= 0.5:
        dropped.append((kind, "overlap", text))
        continue
      kept.append(text)
    held = set(rng.choice(len(kept), size=round(HELD_OUT_SHARE * len(kept)), replace=False))
    grammar["constructions"][kind] += [{"text": t, "split": "heldout" if i in held else "train"}
                                       for i, t in enumerate(kept)]
    print(f"{kind}: {len(kept)} new ({len(held)} held out), {len(texts) - len(kept)} dropped")
  for kind, why, text in dropped:
    print(f"  dropped ({kind}, {why}): {text!r}")
  generator.validate_grammar(grammar, "ml-1m")
  pathlib.Path(out).write_text(json.dumps(grammar, indent=1, ensure_ascii=False) + "\n",
                               encoding="utf-8")


if __name__ == "__main__":
  main(sys.argv[1])
