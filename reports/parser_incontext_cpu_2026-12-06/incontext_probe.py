"""Diagnostic (issue 16, validation only): known forms as the encoder states them *inside*
requests (mean of their token states in generated training requests) against the forms embedded
alone (the parser's known_forms), read by the same span rule: each tag scored by the best cosine
of any 1-6-token span of the request's words (token states' mean) with a tag's forms (max) or
its centroid; as many top tags as the request truly names (oracle count); share with the right
set. Generated requests, noise off; the everyday set is not read."""
import re, sys, time
import numpy as np
from dpr_jax.prompts import generator
from dpr_jax.prompts.encoder import TextEncoder
from dpr_jax.prompts.reader import form_texts

S = 32
enc = TextEncoder.from_pretrained(None)
tags = list(generator.DOMAIN_TAGS["ml-1m"])
ftexts, ftag = form_texts("ml-1m", tags)
ftag = np.array(ftag)
iso = enc.encode(ftexts)
iso = iso / np.linalg.norm(iso, axis=1, keepdims=True)

def form_positions(text, form, encoding):
  spans = [m.span() for m in re.finditer(r"(?<![a-z0-9])" + re.escape(form.lower()) + r"(?![a-z0-9])", text.lower())]
  out = []
  for a0, b0 in spans:
    idx = [j for j, ((a, b), sp) in enumerate(zip(encoding.offsets[:S], encoding.special_tokens_mask[:S]))
           if not sp and b > a and a < b0 and b > a0]
    if idx:
      out.append(idx)
  return out

def states(texts):
  tok, mask = enc.token_states(texts, S)
  encs = enc.tokenizer.encode_batch(list(texts))
  return tok.astype(np.float32), mask, encs

t0 = time.time()
train = generator.generate("ml-1m", "train", int(sys.argv[1]) if len(sys.argv) > 1 else 3000, 0, noise=0.0)
train = [r for r in train if r.forms]
tok, mask, encs = states([r.text for r in train])
row = {f: i for i, f in enumerate(ftexts)}
acc = np.zeros_like(iso); cnt = np.zeros(len(ftexts))
for i, r in enumerate(train):
  for f in r.forms:
    if f.lower() not in row:
      continue
    for idx in form_positions(r.text, f, encs[i]):
      v = tok[i, idx].mean(0); acc[row[f.lower()]] += v / np.linalg.norm(v); cnt[row[f.lower()]] += 1
ctx = np.where(cnt[:, None] > 0, acc, iso)
ctx = ctx / np.linalg.norm(ctx, axis=1, keepdims=True)
print(f"{len(train)} training requests, forms seen in context {np.mean(cnt > 0):.3f} ({time.time() - t0:.0f} s)", flush=True)

def centroids(e):
  c = np.eye(len(tags))[ftag].T @ e
  return c / np.linalg.norm(c, axis=1, keepdims=True)

refs = {"alone, forms": (iso, ftag), "alone, centroid": (centroids(iso), np.arange(len(tags))),
        "in context, forms": (ctx, ftag), "in context, centroid": (centroids(ctx), np.arange(len(tags))),
        "both, forms": (np.concatenate([iso, ctx]), np.concatenate([ftag, ftag]))}
for forms_from, cons in (("heldout", "train"), ("heldout", "heldout"), ("train", "heldout")):
  reqs = generator.generate("ml-1m", cons, 500, 7, noise=0.0, forms_from=forms_from)
  reqs = [r for r in reqs if r.want or r.avoid]
  tk, mk, en = states([r.text for r in reqs])
  res = {k: [] for k in refs}
  for i, r in enumerate(reqs):
    words = [j for j, ((a, b), sp) in enumerate(zip(en[i].offsets[:S], en[i].special_tokens_mask[:S])) if not sp and b > a]
    spans = []
    for w in range(1, 7):
      for s in range(len(words) - w + 1):
        if words[s + w - 1] - words[s] == w - 1:
          v = tk[i, words[s]:words[s] + w].mean(0); spans.append(v / np.linalg.norm(v))
    sp = np.stack(spans)
    named = sorted({tags.index(t) for t in (*r.want, *r.avoid)})
    for k, (e, lab) in refs.items():
      sim = (sp @ e.T).max(0)
      score = np.full(len(tags), -1.0)
      np.maximum.at(score, lab, sim)
      res[k].append(set(np.argsort(-score)[:len(named)].tolist()) == set(named))
  print(f"{forms_from} forms, {cons} constructions ({len(reqs)} requests): " +
        ", ".join(f"{k} {np.mean(v):.3f}" for k, v in res.items()), flush=True)
