"""``reports/typos_cpu_2026-12-07/read_set.py`` with ``dpr_jax.serve.avoid_first.wish_first``
switched off: the set read as before the change, by the same code (``before2_*.txt``).

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=. python reports/avoid_first_cpu_2026-12-07/read_off.py RUN DOMAIN SET
"""
import runpy
import sys
from unittest import mock
with mock.patch("dpr_jax.serve.avoid_first.wish_first", lambda t: t):
  sys.argv = ["read_set.py"] + sys.argv[1:]
  runpy.run_path("reports/typos_cpu_2026-12-07/read_set.py", run_name="__main__")
