"""launch/read_latency.py: one line per round and ensemble size, on the shared run."""

import re
import sys

from conftest import launch_script


def test_it_times_every_ensemble_size_asked_for(dpr_run, monkeypatch, capsys):
  config, _ = dpr_run
  module = launch_script("read_latency")
  monkeypatch.setattr(sys, "argv", ["read_latency.py", config.run.dir, "--members", "1", "2",
                                    "--requests", "3", "--rounds", "1"])
  module.main()
  lines = capsys.readouterr().out.strip().splitlines()
  pattern = r"round 0, {} parsers: read p50 \d+\.\d\d ms, whole answer p50 \d+\.\d\d ms"
  assert len(lines) == 2
  assert re.fullmatch(pattern.format(1), lines[0]) and re.fullmatch(pattern.format(2), lines[1])
