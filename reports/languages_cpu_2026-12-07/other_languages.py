import collections, json
from dpr_jax.prompts import language
rows = [json.loads(l) for l in open("dpr_jax/prompts/languages/requests.jsonl")]
by = collections.defaultdict(lambda: [0, 0])
missed, ctrl = [], []
for r in rows:
    l = language.other_language(r["text"])
    if r["language"] == "en":
        by["en"][0] += l is not None; by["en"][1] += 1
        if l: ctrl.append((r["id"], r["text"], l))
    else:
        by[r["language"]][0] += l is not None; by[r["language"]][1] += 1
        if not l: missed.append((r["id"], r["text"]))
        else: print(r["id"], repr(r["text"]), "->", l)
other = [v for k, v in by.items() if k != "en"]
print("other languages flagged:", sum(a for a, _ in other), "of", sum(b for _, b in other))
print({k: f"{a}/{b}" for k, (a, b) in by.items()})
print("English controls flagged:", ctrl)
print("missed:", missed)
