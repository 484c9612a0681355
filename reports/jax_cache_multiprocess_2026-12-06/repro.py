"""Two JAX processes on one machine (CPU, gloo), one device each: a jitted sum over a sharded
array whose result is replicated (one cross-process collective), with a persistent compilation
cache. Run it twice on the same cache folder (``repro.sh``); the second run is the one that
can hang. Prints the cache hits and misses of this process and the result.

  python repro.py PROCESS_ID PORT CACHE_DIR
"""
import logging
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

pid, port, cache = int(sys.argv[1]), sys.argv[2], sys.argv[3]
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
step = jax.jit(lambda a: a.sum(0), out_shardings=NamedSharding(mesh, P()))
total = step(x)
total = jnp.add(total, step(x))  # as dpr_jax.eval.ranking.average adds two batches' sums
cache_lines = [h for h in hits if "persistent" in h.lower()]
print(f"process {pid}, jax {jax.__version__}:", *cache_lines, sep="\n  ")
print(f"process {pid} result", np.asarray(total.addressable_data(0)), flush=True)
