"""The forty hand-typed requests of reports/hand_probe_cpu_2026-12-07/ read through the
Recommender (user 42), one TSV line each: request, read as, titles, notes.

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=. python reports/years_cpu_2026-12-07/hand_probe.py RUN
"""
import sys
from dpr_jax.serve.recommender import Recommender, Request
rec = Recommender.load(sys.argv[1])
texts = [l.strip() for l in open("reports/hand_probe_cpu_2026-12-07/requests.txt") if l.strip() and not l.startswith("#")]
print("# request\tread as\ttitle\tnotes")
for t, a in zip(texts, rec.recommend_many([Request(user="42", prompt=t) for t in texts])):
    print(f"{t}\t{a.get('read_as','')}\t{'; '.join(x['title'] for x in a.get('titles', []))}\t{' | '.join(a.get('notes', []))}")
