"""Diagnostic (no choice): how well does a linear probe on MiniLM's pooled sentence embedding
tell a wish from an avoid on the generator's held-out constructions, against the lexical
negation cue and against the parser? Validation split only (heldout, seed 1)."""
import re, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
from dpr_jax.prompts import generator
from dpr_jax.prompts.encoder import TextEncoder
from dpr_jax.prompts.features import negation_cue

D = "ml-1m"
enc = TextEncoder.from_pretrained(None)
train = [r for r in generator.generate(D, "train", 6000, seed=0) if r.kind in ("positive", "negative")]
held = [r for r in generator.generate(D, "heldout", 1000, seed=1) if r.kind in ("positive", "negative")]

def masked(r):
  t = r.text
  for f in sorted(set(r.forms), key=len, reverse=True):
    t = re.sub(re.escape(f), "that", t, flags=re.I)
  return t

def feats(rs, mask):
  x = enc.encode([masked(r) if mask else r.text for r in rs])
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  cue = np.array([negation_cue(r.text) for r in rs], np.float32)[:, None]
  return x, cue

def fit(x, y, l2=1e-3, steps=3000, lr=0.5):
  w = np.zeros(x.shape[1]); b = 0.0
  for _ in range(steps):
    p = 1 / (1 + np.exp(-(x @ w + b)))
    g = p - y
    w -= lr * (x.T @ g / len(y) + l2 * w); b -= lr * g.mean()
  return w, b

ytr = np.array([r.kind == "negative" for r in train], float)
yhe = np.array([r.kind == "negative" for r in held], float)
print(f"train {len(train)} ({ytr.mean():.2f} avoid), heldout {len(held)} ({yhe.mean():.2f} avoid)")
for mask in (False, True):
  xtr, ctr = feats(train, mask); xhe, che = feats(held, mask)
  for name, a, b2 in (("embedding", xtr, xhe), ("embedding+cue", np.hstack([xtr, ctr]), np.hstack([xhe, che]))):
    w, b = fit(a, ytr)
    ptr = (a @ w + b) > 0; phe = (b2 @ w + b) > 0
    print(f"mask={mask!s:5} {name:14s} train acc {np.mean(ptr == ytr):.3f}  heldout acc {np.mean(phe == yhe):.3f}"
          f"  (wishes {np.mean(phe[yhe == 0] == 0):.3f}, avoids {np.mean(phe[yhe == 1] == 1):.3f})")
cue = np.array([negation_cue(r.text) > 0 for r in held])
print(f"lexical cue alone heldout acc {np.mean(cue == yhe):.3f} (wishes {np.mean(cue[yhe == 0] == 0):.3f}, avoids {np.mean(cue[yhe == 1] == 1):.3f})")

if len(sys.argv) > 1:  # a trained run: the parser's stance on these requests
  from dpr_jax.serve.recommender import Recommender
  rec = Recommender.load(sys.argv[1])
  inv = []
  for r in held:
    p = rec.read(r.text).parse
    want = {t for t, _ in p.want}; avoid = {t for t, _ in p.avoid}
    inv.append(bool(set(r.want) & avoid or set(r.avoid) & want))
  inv = np.array(inv)
  print(f"parser read as the opposite: {inv.mean():.3f} (wishes {inv[yhe == 0].mean():.3f}, avoids {inv[yhe == 1].mean():.3f})")
