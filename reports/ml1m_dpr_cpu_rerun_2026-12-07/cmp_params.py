import sys, numpy as np, jax
import orbax.checkpoint as ocp
def load(d):
  return ocp.PyTreeCheckpointer().restore(d)
a, b = load(sys.argv[1]), load(sys.argv[2])
la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
print(len(la), len(lb))
worst = 0.0; same = True
for (pa, xa), (pb, xb) in zip(la, lb):
  xa, xb = np.asarray(xa), np.asarray(xb)
  if xa.shape != xb.shape or not np.array_equal(xa, xb):
    same = False
    if xa.shape == xb.shape and xa.size:
      worst = max(worst, float(np.max(np.abs(xa.astype(np.float64) - xb))))
print("identical" if same else f"differ, max abs diff {worst:.3g}")
