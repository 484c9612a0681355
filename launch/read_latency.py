"""How long a trained run takes to read a request it has not seen and to answer it, per size of
the parser ensemble (docs/dpr.md; the cost side of ``parser.members``).

    python launch/read_latency.py RUN [--members 5 10] [--requests 60] [--rounds 3]

RUN is a trained DPR run whose stage 2 holds at least max(--members) parsers. Requests are
generated from the training split (each read once, so no answer comes from the reader's cache);
per round and ensemble size it prints the median wall time of ``Recommender.read`` (token states
from the frozen encoder + the parser ensemble) and of a whole prompted answer for one user.
"""

import argparse
import statistics
import time

from dpr_jax import config as config_lib
from dpr_jax.prompts import generator, templates
from dpr_jax.serve.recommender import Recommender, Request


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("run")
  p.add_argument("--members", type=int, nargs="+", default=[5, 10])
  p.add_argument("--requests", type=int, default=60)
  p.add_argument("--rounds", type=int, default=3)
  a = p.parse_args()
  base = config_lib.load_run_config(a.run)
  need = 2 + 2 * a.requests * a.rounds * len(a.members)
  texts = list(dict.fromkeys(r.text for r in generator.generate(
      base.dpr.domain, "train", 3 * need, 123, tags=templates.tags_for(base.dpr.domain))))
  if len(texts) < need:
    p.error(f"only {len(texts)} distinct requests for the {need} asked; ask for fewer")
  fresh = iter(texts[2:])
  for rnd in range(a.rounds):
    for members in a.members:
      config = config_lib.load_run_config(a.run)
      config.parser.members = members
      rec = Recommender.load(a.run, config)
      user = rec.data.user_ids[0]
      rec.read(texts[0])  # compiles
      rec.recommend(Request.from_json({"user": user, "prompt": texts[1]}))
      read, answer = [], []
      for _ in range(a.requests):
        start = time.perf_counter()
        rec.read(next(fresh))
        read.append(time.perf_counter() - start)
      for _ in range(a.requests):
        start = time.perf_counter()
        rec.recommend(Request.from_json({"user": user, "prompt": next(fresh)}))
        answer.append(time.perf_counter() - start)
      print(f"round {rnd}, {members} parsers: read p50 {1e3 * statistics.median(read):.2f} ms,"
            f" whole answer p50 {1e3 * statistics.median(answer):.2f} ms", flush=True)


if __name__ == "__main__":
  main()
