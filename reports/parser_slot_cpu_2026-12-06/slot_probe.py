"""Diagnosis (validation only): would knowing where the tag forms sit in a request help?"""
import re, sys, time
import numpy as np, jax, jax.numpy as jnp, optax
from dpr_jax.prompts import generator, templates
from dpr_jax.prompts.encoder import TextEncoder

S = 40
tags = list(templates.tags_for("ml-1m"))
T = len(tags)
enc = TextEncoder.from_pretrained(None)

def spans_of(r):
  """char spans of the request's forms (noise off: forms verbatim), in slot order."""
  low, out, used = r.text.lower(), [], set()
  for f in r.forms:
    for m in re.finditer(r"(?<![a-z0-9])" + re.escape(f) + r"(?![a-z0-9])", low):
      if m.start() not in used:
        used.add(m.start()); out.append((m.start(), m.end())); break
    else:
      out.append(None)
  return out

def data(split, n, seed, forms_from=None):
  reqs = generator.generate("ml-1m", split, n, seed, tags=tags, noise=0.0, forms_from=forms_from)
  texts = [r.text for r in reqs]
  states, mask = enc.token_states(texts, S)
  encs = enc.tokenizer.encode_batch(texts)
  slot = np.zeros((len(reqs), S), np.int32)  # 0 none, k+1 = slot k
  for i, (r, e) in enumerate(zip(reqs, encs)):
    for k, sp in enumerate(spans_of(r)):
      if sp is None: continue
      for j, (a, b) in enumerate(e.offsets[:S]):
        if b > a and a < sp[1] and b > sp[0] and e.special_tokens_mask[j] == 0:
          slot[i, j] = k + 1
  tag_of = []
  for r in reqs:
    slots = [s for s in generator.TAG_SLOTS if "{" + s + "}" in r.construction]
    tag_of.append(list(r.want) + list(r.avoid))
  return reqs, states.astype(np.float32), mask, slot

t0 = time.time()
forms, form_tag = [], []
for j, t in enumerate(tags):
  for f in generator.surface_forms("ml-1m", t, "train") + (t.lower(),):
    forms.append(f); form_tag.append(j)
form_tag = np.array(form_tag)
F = enc.encode(forms)
cent = np.stack([F[form_tag == j].mean(0) for j in range(T)]); cent /= np.linalg.norm(cent, axis=1, keepdims=True)

tr, Xtr, Mtr, Ytr = data("train", 4000, 0)
print("train data", time.time() - t0, flush=True)

# A per-token slot detector: logistic regression on the frozen token states (+ neighbours).
def feats(X):
  prev = np.pad(X, ((0, 0), (1, 0), (0, 0)))[:, :-1]
  nxt = np.pad(X, ((0, 0), (0, 1), (0, 0)))[:, 1:]
  return np.concatenate([X, prev, nxt], -1)
W = jnp.zeros((3 * Xtr.shape[-1],)); b0 = jnp.zeros(())
params = (W, b0)
opt = optax.adam(1e-2); st = opt.init(params)
Ftr = jnp.asarray(feats(Xtr)[Mtr]); ytr = jnp.asarray((Ytr[Mtr] > 0).astype(np.float32))
@jax.jit
def step(p, st):
  def loss(p):
    z = Ftr @ p[0] + p[1]
    return jnp.mean(optax.sigmoid_binary_cross_entropy(z, ytr)) + 1e-4 * jnp.sum(p[0] ** 2)
  l, g = jax.value_and_grad(loss)(p)
  u, st = opt.update(g, st); return optax.apply_updates(p, u), st, l
for i in range(300):
  params, st, l = step(params, st)
print("slot LR loss", float(l), flush=True)

def runs(flags):
  """maximal runs of True -> list of (start, end)."""
  out, s = [], None
  for j, f in enumerate(list(flags) + [False]):
    if f and s is None: s = j
    if not f and s is not None: out.append((s, j)); s = None
  return out

def span_vec(X, a, b):
  v = X[a:b].mean(0); return v / max(np.linalg.norm(v), 1e-9)

def evaluate(name, reqs, X, M, Y):
  n = len(reqs)
  gold = [set(r.want) | set(r.avoid) for r in reqs]
  # (a) unrestricted: best 1-4 token span per tag (max over forms), top-k with oracle k
  ok_a = 0; ok_g = 0; ok_gc = 0; ok_p = 0; ok_pc = 0; tokacc = []
  P = np.asarray(feats(X) @ np.asarray(params[0]) + float(params[1])) > 0
  for i, r in enumerate(reqs):
    real = np.nonzero(M[i])[0][1:-1]  # drop CLS / SEP
    best = np.full(T, -1.0)
    for a in real:
      for w in range(1, 5):
        if a + w - 1 > real[-1]: break
        v = span_vec(X[i], a, a + w)
        c = F @ v
        np.maximum.at(best, form_tag, c)
    k = len(gold[i])
    top = set(tags[j] for j in np.argsort(-best)[:k]) if k else set()
    ok_a += top == gold[i]
    # (b) gold slot spans, contextual span vector -> nearest form's tag / nearest centroid
    got, gotc = set(), set()
    for s in range(1, Y[i].max() + 1):
      idx = np.nonzero(Y[i] == s)[0]
      if len(idx) == 0: continue
      v = span_vec(X[i], idx.min(), idx.max() + 1)
      c = F @ v; best_f = np.full(T, -1.0); np.maximum.at(best_f, form_tag, c)
      got.add(tags[int(best_f.argmax())]); gotc.add(tags[int((cent @ v).argmax())])
    ok_g += got == gold[i]; ok_gc += gotc == gold[i]
    # (d) predicted slot runs (no oracle count)
    pred = P[i] & M[i]; pred[0] = False
    got, gotc = set(), set()
    for a, b in runs(pred):
      v = span_vec(X[i], a, b)
      c = F @ v; best_f = np.full(T, -1.0); np.maximum.at(best_f, form_tag, c)
      got.add(tags[int(best_f.argmax())]); gotc.add(tags[int((cent @ v).argmax())])
    ok_p += got == gold[i]; ok_pc += gotc == gold[i]
    tokacc.append(np.all((Y[i] > 0)[M[i]][1:-1] == pred[M[i]][1:-1]))
  print(f"{name}: n={n} set right: unrestricted+oracle k {ok_a/n:.3f} | gold spans nearest form "
        f"{ok_g/n:.3f} centroid {ok_gc/n:.3f} | predicted spans nearest form {ok_p/n:.3f} "
        f"centroid {ok_pc/n:.3f} | slot tokens exactly right {np.mean(tokacc):.3f}", flush=True)

for name, args in (("train/train", ("train", 500, 11)), ("heldout forms/train cons", ("train", 500, 7, "heldout")),
                   ("train forms/heldout cons", ("heldout", 500, 7, "train")), ("heldout/heldout", ("heldout", 500, 1))):
  evaluate(name, *data(*args))
print("done", time.time() - t0)
