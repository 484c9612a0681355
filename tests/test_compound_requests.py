"""launch/compound_requests.py: the held-out compound requests it writes, and its error."""


import pytest

from conftest import launch_script
from dpr_jax.prompts import generator as g


def test_it_writes_the_held_out_compound_requests_with_their_labels(tmp_path, capsys):
  out = tmp_path / "requests.tsv"
  launch_script("compound_requests").main(["compound_requests.py", "ml-1m", str(out), "2000", "5"])
  rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
  expected = [r for r in g.generate("ml-1m", "heldout", 2000, 5) if g.compound_slots(r.construction)]
  assert len(rows) == len(expected) > 0
  for (text, want, avoid), r in zip(rows, expected):
    assert text == r.text and tuple(filter(None, want.split(","))) == r.want
    assert tuple(filter(None, avoid.split(","))) == r.avoid
  held = set().union(*(g.constructions("ml-1m", k, "heldout") for k in g.KINDS))
  assert all(r.construction in held for r in expected)
  assert f"{len(rows)} held-out compound requests" in capsys.readouterr().out


def test_a_grammar_without_compound_slots_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setattr(g, "compound_slots", lambda template: frozenset())
  out = tmp_path / "requests.tsv"
  with pytest.raises(SystemExit, match="no held-out construction with a compound slot"):
    launch_script("compound_requests").main(["compound_requests.py", "ml-1m", str(out)])
  assert not out.exists()
