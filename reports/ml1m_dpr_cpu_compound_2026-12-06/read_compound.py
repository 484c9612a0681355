"""Rule (1) of reports/experiments.md, 2026-12-06 session 16: how a run's parsers read the
held-out compound requests ("a gore-free night", "a spaceship-inspired picture").

    python read_compound.py RUN [OUT.tsv]

The requests: this code's generator, held-out split, 4,000 drawn with seed 3 (default noise),
those whose construction has a compound slot. Right = the serving reader's want and avoid sets
equal the labels. Also counted: inverted (an avoided tag read as wanted, or a wanted one as
avoided) and nothing read."""
import sys, warnings
warnings.simplefilter("ignore")
from dpr_jax.prompts import generator as g
from dpr_jax.serve.recommender import Recommender

reqs = [r for r in g.generate("ml-1m", "heldout", 4000, 3) if g.compound_slots(r.construction)]
rec = Recommender.load(sys.argv[1])
out = open(sys.argv[2], "w") if len(sys.argv) > 2 else None
by_kind = {}
for r in reqs:
  p = rec.read(r.text).parse
  want, avoid = {t for t, _ in p.want}, {t for t, _ in p.avoid}
  right = want == set(r.want) and avoid == set(r.avoid)
  inverted = bool(set(r.avoid) & want or set(r.want) & avoid)
  k = by_kind.setdefault(r.kind, [0, 0, 0, 0])
  k[0] += 1; k[1] += right; k[2] += inverted; k[3] += not (want or avoid)
  if out:
    out.write(f"{r.kind}\t{int(right)}\t{int(inverted)}\t{r.text}\t{sorted(r.want)}\t{sorted(r.avoid)}\t"
              f"{sorted(want)}\t{sorted(avoid)}\n")
n = sum(k[0] for k in by_kind.values())
tot = [sum(k[i] for k in by_kind.values()) for i in range(4)]
for kind, (c, right, inv, none) in sorted(by_kind.items()):
  print(f"{kind:9s} n={c:4d} right={right / c:.3f} inverted={inv / c:.3f} nothing={none / c:.3f}")
print(f"{'all':9s} n={n:4d} right={tot[1] / n:.3f} inverted={tot[2] / n:.3f} nothing={tot[3] / n:.3f}")
