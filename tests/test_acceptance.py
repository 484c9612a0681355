"""The acceptance table read from results files (dpr_jax.eval.acceptance)."""

import json

import pytest

from dpr_jax.eval import acceptance


def _methods(**rows):
  return {"users": 10, "methods": rows}


def _results(scale: float = 1.0) -> dict:
  """A results_steering.json 'results' with every task the checks read; ``scale`` multiplies
  DPR's figures (1.0: every check met)."""
  s, up = scale, 1 + 10 * (1 - scale)  # up: how much worse the lower-is-better figures get
  return {
      "SEQ": _methods(backbone={"ndcg@10": 0.19}, dpr={"ndcg@10": 0.19 * (2 - s)}),
      "POS": _methods(filter={"ndcg@10": 0.30}, dpr={"ndcg@10": 0.34 * s},
                      **{"dpr+filter": {"ndcg@10": 0.34 * s},
                         "selection_bound": {"ndcg@10": 0.36}}),
      "NEG": _methods(filter={"ndcg@10": 0.10}, dpr={"violation@10": 0.005 * up},
                      **{"dpr+filter": {"ndcg@10": 0.10 * s}}),
      "NUANCED": _methods(filter={"ndcg@10": 0.30}, dpr={"tag_precision@10": 0.72 * s},
                          **{"dpr+filter": {"ndcg@10": 0.30 * s}}),
      "COMBINED": {**_methods(filter={"ndcg@10": 0.40}, dpr={"satisfied@10": 0.96 * s},
                              **{"dpr+filter": {"ndcg@10": 0.43 * s}}), "split_ok": 0.9},
      "POLARITY": _methods(dpr={"polarity": 0.93 * s, "polarity_loose": 0.99}),
      "EVERYDAY+": _methods(dpr={"tag_precision@10": 0.91 * s}),
      "EVERYDAY-": _methods(dpr={"violation@10": 0.02 * up}),
      "EVERYDAY+-": _methods(dpr={"satisfied@10": 0.86 * s}),
      "EVERYDAY?": _methods(dpr={"changed@10": 1.5 * up}),
  }


def _parser(acc: float) -> dict:
  return {"generator held-out": {"accuracy": acc},
          "everyday": {"accuracy": acc, "positive": 1.0, "negative": acc, "combined": 0.5}}


def test_every_check_is_met_when_every_figure_clears_its_target():
  run = acceptance.Run(_results(1.0), _parser(0.96), "sasrec")
  for check in acceptance.CHECKS:
    figure, met, _ = check.cell(run)
    assert met, (check.label, figure)


def test_every_check_fails_when_dpr_falls_short():
  # Worse DPR figures and a weak parser miss every check that reads them; the backbone row
  # reads the backbone alone, so it is failed below by a backbone under its target.
  run = acceptance.Run(_results(0.8), _parser(0.5), "gru4rec")
  missed = {c.label for c in acceptance.CHECKS if not c.cell(run)[1]}
  assert missed == {c.label for c in acceptance.CHECKS} - {
      "backbone NDCG@10 ≥ 0.18 (SASRec) / 0.175 (GRU4Rec)"}
  low = acceptance.Run(_results(1.0), _parser(0.96), "gru4rec")
  low.steering["SEQ"]["methods"]["backbone"]["ndcg@10"] = 0.17
  backbone = next(c for c in acceptance.CHECKS if c.label.startswith("backbone"))
  assert backbone.cell(low) == ("0.1700", False, "")


def test_the_table_marks_targets_and_names_what_a_run_lacks(tmp_path):
  for name, results, parser in (("a", _results(1.0), _parser(0.96)),
                                ("b", _results(0.8), None)):
    (tmp_path / name).mkdir()
    (tmp_path / name / "results_steering.json").write_text(
        json.dumps({"protocol": {"model": "sasrec"}, "results": results}))
    if parser:
      (tmp_path / name / "results_parser.json").write_text(json.dumps(parser))
  del results["EVERYDAY?"]
  (tmp_path / "b" / "results_steering.json").write_text(
      json.dumps({"protocol": {"model": "sasrec"}, "results": results}))
  table = acceptance.table({"A": acceptance.load(tmp_path / "a"),
                            "B": acceptance.load(tmp_path / "b")})
  lines = table.splitlines()
  assert len(lines) == 3 + len(acceptance.CHECKS)
  # The count row counts each column's ticks: A meets every check; B only those its weaker
  # figures still clear (none of DPR's) and the backbone row, and lacks EVERYDAY vague.
  n = len(acceptance.CHECKS)
  assert lines[-1] == (f"| checks met | {sum('✓' in l.split('|')[2] for l in lines[2:-1])} of {n} "
                       f"| {sum('✓' in l.split('|')[3] for l in lines[2:-1])} of {n} |")
  assert lines[-1].startswith(f"| checks met | {n} of {n} | 1 of {n}")
  assert lines[0].endswith("| A | B |")
  vague = next(line for line in lines if line.startswith("| EVERYDAY vague"))
  assert "1.50 ✓" in vague and "no 'EVERYDAY?'" in vague
  polarity = next(line for line in lines if line.startswith("| POLARITY"))
  assert "0.930 ✓ (loose 0.990)" in polarity and "0.744 ✗" in polarity
  # The strict figure's ceiling, where a results file records it, stands beside it.
  run = acceptance.load(tmp_path / "a")
  run.steering["POLARITY"]["ceiling"] = 0.88
  polarity = next(c for c in acceptance.CHECKS if c.label.startswith("POLARITY"))
  assert polarity.cell(run) == ("0.930", True, "loose 0.990; ceiling 0.880")
  everyday = next(line for line in lines if line.startswith("| parser, everyday"))
  assert "(pos 1.00, neg 0.96, comb 0.50)" in everyday and "not in results_parser.json" in everyday
  # The share read as the opposite, where a results file records it, stands beside.
  run.parser["everyday"]["inverted"] = 0.02
  run.parser["generator held-out"]["inverted"] = 0.2
  parser_rows = [c for c in acceptance.CHECKS if c.label.startswith("parser")]
  assert [c.cell(run)[2] for c in parser_rows] == [
      "read as the opposite 0.200",
      "pos 1.00, neg 0.96, comb 0.50; read as the opposite 0.020"]


def test_the_command_line_prints_the_table_or_a_clear_error(tmp_path, capsys):
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "results_steering.json").write_text(
      json.dumps({"protocol": {"model": "sasrec"}, "results": _results(1.0)}))
  assert acceptance.main([f"X={tmp_path / 'run'}"]) == 0
  out = capsys.readouterr().out
  assert out.count("✓") == len(acceptance.CHECKS) - 2  # no parser file
  assert out.splitlines()[-1] == f"| checks met | {len(acceptance.CHECKS) - 2} of {len(acceptance.CHECKS)} |"
  assert acceptance.main([f"X={tmp_path / 'missing'}"]) == 2
  assert capsys.readouterr().err.startswith("error:")
  assert acceptance.main(["no-equals-sign"]) == 2
  assert "usage" in capsys.readouterr().err


def test_a_column_of_seeds_checks_the_mean_and_shows_the_range():
  seeds = [acceptance.Run(_results(s), _parser(a), "sasrec")
           for s, a in ((1.0, 0.96), (0.8, 0.90), (1.2, 1.0))]
  del seeds[2].steering["POS"]["methods"]["selection_bound"]  # a figure one seed lacks
  mean = acceptance.Run.mean(seeds)
  assert mean.m("POS", "dpr", "ndcg@10") == pytest.approx(0.34)
  assert "selection_bound" not in mean.steering["POS"]["methods"]
  assert mean.parser["generator held-out"]["accuracy"] == pytest.approx(2.86 / 3)
  lines = acceptance.table({"SASRec": seeds}).splitlines()
  pos = next(line for line in lines if line.startswith("| POS: DPR ≥ filter"))
  assert pos.endswith("| 0.3400 vs 0.3000 ✓ (seeds 0.2720-0.4080) |")
  gen = next(line for line in lines if line.startswith("| parser, generator"))
  assert gen.endswith("| 0.953 ✓ (seeds 0.900-1.000) |")
  # POS + filter names the selection bound, which not every seed has: the row says so.
  bound = next(line for line in lines if "selection_bound" in line)
  assert "no 'selection_bound'" in bound
