"""Per COMBINED phrasing: the share of genre pairs read right, and how the rest are read (g: the
wanted genre, h: the avoided one; capitals: read as the opposite; extra: another genre read too)."""
import json, collections, sys
from dpr_jax.models.parser import AVOID as A, WANT as W
from dpr_jax.prompts import templates
rows=[json.loads(l) for l in open(sys.argv[1])]
def classify(r):
  p=r["p"]; g,h=r["want"],r["avoid"]
  st={t:max(range(3),key=lambda i:v[i]) for t,v in p.items()}
  read_w={t for t,s in st.items() if s==W}; read_a={t for t,s in st.items() if s==A}
  if read_w=={g} and read_a=={h}: return "right"
  parts=["g:"+("want" if st[g]==W else "AVOID" if st[g]==A else "none"),
         "h:"+("avoid" if st[h]==A else "WANT" if st[h]==W else "none")]
  if (read_w|read_a)-{g,h}: parts.append("extra")
  return " ".join(parts)
by=collections.defaultdict(collections.Counter)
for r in rows: by[r["tpl"]][classify(r)]+=1
for k,c in sorted(by.items()):
  n=sum(c.values()); print(k, round(c["right"]/n,3), templates.COMBINED["ml-1m"][k]); print("    ", dict(c.most_common()))
tot=collections.Counter(); [tot.update(c) for c in by.values()]; print(tot.most_common())
