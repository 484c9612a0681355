"""Whether a re-read's tables equal the committed ones (every task's figures, both splits), selection aside."""
import json, sys
a = json.load(open(sys.argv[1]))["results"]; b = json.load(open(sys.argv[2]))["results"]
def strip(r):
  return {k: v for k, v in r.items() if k not in ("selection", "routing")}
diff = []
def walk(x, y, path):
  if isinstance(x, dict):
    for k in set(x) | set(y):
      if k not in x or k not in y: diff.append(path + "/" + k + " missing"); continue
      walk(x[k], y[k], path + "/" + str(k))
  elif isinstance(x, float) and isinstance(y, float):
    if abs(x - y) > 1e-6: diff.append(f"{path}: {x} vs {y}")
  elif x != y: diff.append(f"{path}: {x!r:.60} vs {y!r:.60}")
walk(strip(a), strip(b), "")
print(len(diff), "differences"); print("\n".join(diff[:20]))
