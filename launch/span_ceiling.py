"""How far can span matching on a frozen encoder get on unseen surface forms? (issue 16;
reports/experiments.md, 2026-12-02 and 2026-12-05 night.)

    python launch/span_ceiling.py ml-1m [--encoder DIR] [--requests 300]

No training, the encoder's similarity alone (``--encoder``: a model folder, e.g.
all-mpnet-base-v2 from launch/get_mpnet.py; default all-MiniLM-L6-v2), pooled and normalised as
the parser's known forms are:

  1. isolated held-out forms (the generator's held-out split): the share whose nearest tag
     centroid of training forms / nearest single training form is their own tag;
  2. generator requests in held-out constructions (noise off), with held-out and then with
     training forms: each tag scored by the best cosine of any 1-6-word n-gram of the request
     with the tag's centroid; as many top tags taken as the request truly names (an oracle
     count); the share with the right set, and the AUC of named against unnamed tags.
"""

import argparse
import time

import numpy as np

from dpr_jax.prompts import generator
from dpr_jax.prompts.encoder import TextEncoder
from dpr_jax.prompts.reader import form_texts


def ngrams(text: str, max_n: int = 6) -> list[str]:
  """Every run of 1..max_n words of ``text``, sorted."""
  words = generator._WORD_RE.findall(text)  # pylint: disable=protected-access
  return sorted({" ".join(words[i:j]) for i in range(len(words))
                 for j in range(i + 1, min(len(words), i + max_n) + 1)})


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("domain", nargs="?", default="ml-1m")
  ap.add_argument("--encoder", default=None, help="model folder (default all-MiniLM-L6-v2)")
  ap.add_argument("--requests", type=int, default=300, help="generated requests drawn (seed 1)")
  args = ap.parse_args()
  enc = TextEncoder.from_pretrained(args.encoder)
  name = args.encoder or "all-MiniLM-L6-v2"
  tags = list(generator.load_grammar(args.domain)["surface_forms"])
  tr_texts, tr_tag = form_texts(args.domain, tags)
  tr_tag = np.array(tr_tag)
  held = [(f, t) for t, tag in enumerate(tags)
          for f in generator.surface_forms(args.domain, tag, "heldout")]
  ho_texts, ho_tag = [f for f, _ in held], np.array([t for _, t in held])
  start = time.time()
  e_tr, e_ho = enc.encode(tr_texts), enc.encode(ho_texts)
  cent = np.eye(len(tags))[tr_tag].T @ e_tr  # [T, D]
  cent /= np.linalg.norm(cent, axis=-1, keepdims=True)
  by_centroid = np.mean(np.argmax(e_ho @ cent.T, -1) == ho_tag)
  by_form = np.mean(tr_tag[np.argmax(e_ho @ e_tr.T, -1)] == ho_tag)
  print(f"[{name}] {len(tr_texts)} training forms, {len(ho_texts)} held-out forms, {len(tags)}"
        f" tags; isolated held-out forms: nearest centroid {by_centroid:.3f}, nearest form"
        f" {by_form:.3f} ({time.time() - start:.0f} s)", flush=True)
  for forms_from in ("heldout", "train"):
    pool = [t for t in tags if generator.surface_forms(args.domain, t, forms_from)]
    reqs = generator.generate(args.domain, "heldout", args.requests, 1, tags=pool, noise=0.0,
                              forms_from=forms_from)
    reqs = [r for r in reqs if r.want or r.avoid]  # vague requests name no tag
    grams = [ngrams(r.text) for r in reqs]
    flat = sorted({g for gs in grams for g in gs})
    start = time.time()
    row = {g: i for i, g in enumerate(flat)}
    sims = enc.encode(flat) @ cent.T  # [G, T]
    right, aucs = [], []
    for r, gs in zip(reqs, grams):
      score = sims[[row[g] for g in gs]].max(0)  # [T]
      named = sorted({tags.index(t) for t in (*r.want, *r.avoid)})
      right.append(set(np.argsort(-score)[:len(named)].tolist()) == set(named))
      aucs.append(np.mean(score[named][:, None] > np.delete(score, named)[None, :]))
    print(f"[{name}] {forms_from:7s} forms in held-out constructions, {len(reqs)} requests (noise"
          f" off): set of named tags right {np.mean(right):.3f}, AUC {np.mean(aucs):.3f}"
          f" ({len(flat)} n-grams, {time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
  main()
