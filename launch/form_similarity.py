"""Does fine-tuning the text encoder's top layers bring *unseen* surface forms nearer their tag?
(issue 16; reports/experiments.md, 2026-12-04.)

    python launch/form_similarity.py ml-1m [--steps 60] [--lr 3e-5] [--layers 1]

Isolated forms, no request around them: each tag's name and *training* surface forms of the
generator (dpr_jax.prompts.generator) train the encoder's top ``--layers`` layers (the rest
frozen; full batch, AdamW) so that each form's pooled embedding is nearer the centroid of the
*other* forms of its tag than any other tag's centroid (softmax over tags, temperature 0.05).
Printed every 5 steps: the training loss and, on the generator's *held-out* forms (the parser's
validation forms; never trained on), the share whose nearest tag centroid / nearest single
training form is their own tag. Step 0 is the frozen encoder (what the parser's span matching
uses). A few minutes on a 2-core CPU.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dpr_jax.prompts import generator
from dpr_jax.prompts.encoder import Embeddings, Layer, TextEncoder, mean_pool_normalize
from dpr_jax.prompts.reader import form_texts


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("domain", nargs="?", default="ml-1m")
  ap.add_argument("--steps", type=int, default=60)
  ap.add_argument("--lr", type=float, default=3e-5)
  ap.add_argument("--layers", type=int, default=1, help="top encoder layers trained")
  ap.add_argument("--temperature", type=float, default=0.05)
  args = ap.parse_args()

  tags = list(generator.load_grammar(args.domain)["surface_forms"])
  enc = TextEncoder.from_pretrained(None)
  cfg = enc.config
  train_texts, train_tag = form_texts(args.domain, tags)
  held = [(f, t) for t, name in enumerate(tags)
          for f in generator.surface_forms(args.domain, name, "heldout")]
  held_texts, held_tag = [f for f, _ in held], np.array([t for _, t in held])
  train_tag = np.array(train_tag)
  print(f"{len(train_texts)} training forms, {len(held_texts)} held-out forms, {len(tags)} tags,"
        f" top {args.layers} of {cfg.num_layers} layers trained")

  def tokens(texts):  # int32[n, S] ids and mask
    ids, _ = enc.tokenize(texts)
    width = max(map(len, ids))
    x, m = np.zeros((len(ids), width), np.int32), np.zeros((len(ids), width), np.int32)
    for i, row in enumerate(ids):
      x[i, :len(row)], m[i, :len(row)] = row, 1
    return jnp.asarray(x), jnp.asarray(m)

  frozen = cfg.num_layers - args.layers

  @jax.jit
  def lower(params, ids, mask):  # the frozen part, run once: float32[n, S, D]
    x = Embeddings(cfg).apply({"params": params["embeddings"]}, ids, jnp.zeros_like(ids))
    for i in range(frozen):
      x = Layer(cfg).apply({"params": params[f"layer_{i}"]}, x, mask.astype(bool))
    return x

  def upper(top, x, mask):  # the trained part and the pooling: float32[n, D] unit rows
    for i in range(frozen, cfg.num_layers):
      x = Layer(cfg).apply({"params": top[f"layer_{i}"]}, x, mask.astype(bool))
    return mean_pool_normalize(x, mask)

  (tr_ids, tr_mask), (ho_ids, ho_mask) = tokens(train_texts), tokens(held_texts)
  tr_x, ho_x = lower(enc.params, tr_ids, tr_mask), lower(enc.params, ho_ids, ho_mask)
  top = {f"layer_{i}": enc.params[f"layer_{i}"] for i in range(frozen, cfg.num_layers)}
  onehot = jax.nn.one_hot(jnp.asarray(train_tag), len(tags))  # [M, T]

  @jax.jit
  def held_out(top):  # (nearest centroid, nearest training form) accuracy on held-out forms
    e_tr, e_ho = upper(top, tr_x, tr_mask), upper(top, ho_x, ho_mask)
    cent = onehot.T @ e_tr
    cent = cent / jnp.linalg.norm(cent, axis=-1, keepdims=True)
    by_centroid = jnp.mean(jnp.argmax(e_ho @ cent.T, -1) == held_tag)
    by_form = jnp.mean(jnp.asarray(train_tag)[jnp.argmax(e_ho @ e_tr.T, -1)] == held_tag)
    return by_centroid, by_form

  def loss_fn(top):
    e = upper(top, tr_x, tr_mask)  # [M, D]
    sums, counts = onehot.T @ e, onehot.sum(0)  # [T, D], [T]
    # a form against its own tag's centroid *without it* and every other tag's centroid
    own = (sums[train_tag] - e) / jnp.maximum(counts[train_tag] - 1, 1)[:, None]
    own_cos = jnp.sum(e * own, -1) / jnp.linalg.norm(own, axis=-1)
    cent = sums / jnp.linalg.norm(sums, axis=-1, keepdims=True)
    logits = jnp.where(onehot > 0, own_cos[:, None], e @ cent.T) / args.temperature
    return optax.softmax_cross_entropy(logits, onehot).mean()

  tx = optax.adamw(args.lr, weight_decay=0.01)

  @jax.jit
  def step(top, opt):
    loss, grads = jax.value_and_grad(loss_fn)(top)
    updates, opt = tx.update(grads, opt, top)
    return optax.apply_updates(top, updates), opt, loss

  opt, start = tx.init(top), time.time()
  a, b = held_out(top)
  print(f"step   0 (frozen)      held-out forms: nearest centroid {float(a):.3f},"
        f" nearest form {float(b):.3f}")
  for i in range(1, args.steps + 1):
    top, opt, loss = step(top, opt)
    if i % 5 == 0:
      a, b = held_out(top)
      print(f"step {i:3d} loss {float(loss):.3f}  held-out forms: nearest centroid {float(a):.3f},"
            f" nearest form {float(b):.3f}  ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
  main()
