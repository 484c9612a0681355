"""Two JAX processes on one machine (CPU, gloo), one device each, with a persistent compilation
cache: one jitted program over a row-sharded array whose outputs are replicated. Run it twice on
the same cache folder (``repro.sh``): on the second run process 0 loads the program from the
cache and process 1 (whose cache key differs) compiles it. Prints this process's cache hits and
misses and the result.

  python repro.py PROCESS_ID PORT CACHE_DIR [one|two]

one: the rows' sum (one cross-process collective); two: the rows doubled and their sum (an
all-gather and an all-reduce in one program).
"""
import logging
import sys

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

pid, port, cache = int(sys.argv[1]), sys.argv[2], sys.argv[3]
kind = sys.argv[4] if len(sys.argv) > 4 else "two"
jax.config.update("jax_compilation_cache_dir", cache)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
hits = []
logging.getLogger("jax._src.compiler").addHandler(type("H", (logging.Handler,), {
    "emit": lambda self, r: hits.append(r.getMessage().split(" with key")[0])})())
logging.getLogger("jax._src.compiler").setLevel(logging.DEBUG)
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)

mesh = Mesh(np.array(jax.devices()), ("data",))
rows = np.arange(8, dtype=np.float32).reshape(8, 1)
x = jax.make_array_from_callback((8, 1), NamedSharding(mesh, P("data")), lambda i: rows[i])
if kind == "one":
  program = lambda a: a.sum(0)
else:
  program = lambda a: (a * 2.0, a.sum(0))
out = jax.jit(program, out_shardings=NamedSharding(mesh, P()))(x)
cache_lines = [h for h in hits if "persistent" in h.lower()]
print(f"process {pid}, jax {jax.__version__}, {kind}:", *cache_lines, sep="\n  ")
print(f"process {pid} result", [np.asarray(o.addressable_data(0)).ravel().tolist()
                                for o in jax.tree.leaves(out)], flush=True)
