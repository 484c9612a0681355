"""launch/span_ceiling.py: the n-grams it scores and its three lines (default encoder)."""

import re
import sys

import pytest

from conftest import launch_script


def test_ngrams_are_every_run_of_up_to_six_words():
  grams = launch_script("span_ceiling").ngrams("no horror, please -- I'm tired", max_n=2)
  assert grams == sorted({"no", "horror", "please", "I'm", "tired", "no horror",
                          "horror please", "please I'm", "I'm tired"})
  assert len(launch_script("span_ceiling").ngrams("a b c d e f g h")) == 8 + 7 + 6 + 5 + 4 + 3


def test_it_prints_the_isolated_forms_and_both_request_sets(monkeypatch, capsys):
  from dpr_jax.errors import UserError
  from dpr_jax.prompts import encoder

  try:
    encoder.default_model_dir()
  except UserError as e:
    pytest.skip(f"all-MiniLM-L6-v2 weights not installed ({e})")
  monkeypatch.setattr(sys, "argv", ["span_ceiling.py", "ml-1m", "--requests", "12"])
  launch_script("span_ceiling").main()
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 3
  assert re.search(r"nearest centroid 0\.\d{3}, nearest form 0\.\d{3}", lines[0])
  for line, forms in zip(lines[1:], ("heldout", "train")):
    assert line.startswith(f"[all-MiniLM-L6-v2] {forms}")
    shares = [float(x) for x in re.findall(r"(?:right|AUC) (\d\.\d{3})", line)]
    assert len(shares) == 2 and all(0 <= s <= 1 for s in shares)
