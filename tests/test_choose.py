"""A choice between runs on validation users by the protocol's rule (dpr_jax.eval.choose)."""

import json
import pathlib

from dpr_jax.eval import choose


def _write_run(path, pos: float, seq: float = 0.19, stage1: float | None = None,
               with_valid: bool = True):
  """A run folder whose validation tables give DPR ``pos`` on POS and ``seq`` unprompted (the
  backbone row 0.19, or a tuned backbone at ``seq`` with stage 1's row at ``stage1``); test
  tables that would choose the other way, to show they are never read."""
  def tables(p):
    seq_rows = {"backbone": {"ndcg@10": 0.19 if stage1 is None else seq},
                "dpr": {"ndcg@10": seq}}
    if stage1 is not None:
      seq_rows["stage1 backbone"] = {"ndcg@10": stage1}
    return {"SEQ": {"methods": seq_rows},
            "POS": {"methods": {"dpr": {"ndcg@10": p}}},
            "NEG": {"methods": {"dpr": {"ndcg@10": 0.15, "violation@10": 0.002}}},
            "NUANCED": {"methods": {"dpr": {"ndcg@10": 0.30, "tag_precision@10": 0.7}}},
            "COMBINED": {"methods": {"dpr": {"ndcg@10": 0.40, "satisfied@10": 0.9}}},
            "POLARITY": {"methods": {"dpr": {"polarity": 0.87}}}}
  results = tables(1.0 - pos)  # test: the opposite order
  if with_valid:
    results["valid"] = tables(pos)
  path.mkdir(parents=True)
  (path / "results_steering.json").write_text(json.dumps({"protocol": {"model": "sasrec"},
                                                          "results": results}))
  return str(path)


def _variant(tmp_path, name, *pos, **kw):
  return choose.variant(name, [choose.acceptance.load(_write_run(tmp_path / f"{name}{i}", p, **kw))
                               for i, p in enumerate(pos)])


def test_the_highest_validation_sum_wins_beyond_the_incumbents_seed_spread(tmp_path):
  incumbent = _variant(tmp_path, "default", 0.40, 0.41, 0.42)  # spread 0.02
  close = _variant(tmp_path, "close", 0.425)  # +0.015 over the mean: within the spread
  far = _variant(tmp_path, "far", 0.45)  # +0.04: beyond it
  assert abs(incumbent.spread - 0.02) < 1e-9 and abs(incumbent.ndcg["POS"] - 0.41) < 1e-9
  chosen, why = choose.choose([incumbent, close])
  assert chosen is incumbent and "within" in why
  chosen, why = choose.choose([incumbent, close, far])
  assert chosen is far and "more than" in why
  # one seed of the incumbent: no spread, any margin changes the default
  assert choose.choose([_variant(tmp_path, "one", 0.41), close])[0].name == "close"


def test_seq_constraint_uses_stage_1s_backbone(tmp_path):
  incumbent = _variant(tmp_path, "frozen", 0.40)
  # stage 3 tuned the backbone: DPR equals the tuned backbone but sits 7% under stage 1's
  tuned = _variant(tmp_path, "tuned", 0.60, seq=0.177, stage1=0.19)
  assert not tuned.seq_ok and incumbent.seq_ok
  chosen, _ = choose.choose([incumbent, tuned])
  assert chosen is incumbent
  text = choose.table([incumbent, tuned])
  assert "fails SEQ" in text and "**frozen (incumbent)** (chosen)" in text
  # an unprompted DPR that moved off its own backbone fails too
  drifted = _variant(tmp_path, "drifted", 0.60, seq=0.17)
  assert not drifted.seq_ok


def test_routing_overlap_reads_the_polarities_shares():
  separated = {"positive_share": [1.0, 0.0, 0.0], "negative_share": [0.0, 0.4, 0.6]}
  alike = {"positive_share": [0.2, 0.8], "negative_share": [0.2, 0.8]}
  partial = {"positive_share": [0.0, 1.0], "negative_share": [0.5, 0.5]}
  assert choose.routing_overlap(separated) == 0.0
  assert abs(choose.routing_overlap(alike) - 1.0) < 1e-12
  assert choose.routing_overlap(partial) == 0.5


def test_cli_table_and_clear_errors(tmp_path, capsys):
  a = _write_run(tmp_path / "a", 0.40)
  b = _write_run(tmp_path / "b", 0.50)
  assert choose.main([f"A={a}", f"B={b}"]) == 0
  out = capsys.readouterr().out
  assert "Chosen: B" in out and out.count("\n| ") == 2  # two rows after the header
  old = _write_run(tmp_path / "old", 0.50, with_valid=False)
  assert choose.main([f"A={a}", f"OLD={old}"]) == 2
  assert "no validation table" in capsys.readouterr().err
  assert choose.main([f"A={tmp_path / 'missing'}"]) == 2
  assert "not found" in capsys.readouterr().err
  assert choose.main(["nonsense"]) == 2
  assert capsys.readouterr().err.startswith("error: usage")


def _write_grid_run(path, pos_by_scale: dict, configured: float = 1.0):
  """A run evaluated at ``configured`` whose positive-scale grid gives DPR ``pos_by_scale`` on
  POS (NUANCED and COMBINED flat at 0.30 / 0.40)."""
  run = _write_run(path, pos_by_scale[str(configured)])
  file = path / "results_steering.json"
  data = json.loads(file.read_text())
  by_task = {"POS": pos_by_scale, "NUANCED": {s: 0.30 for s in pos_by_scale},
             "COMBINED": {s: 0.40 for s in pos_by_scale}}
  data["results"]["selection"] = {"positive_scale": {
      "valid ndcg@10": {s: (p + 0.70) / 3 for s, p in pos_by_scale.items()},
      "valid ndcg@10 by task": by_task, "configured": configured, "split": "valid",
      "valid tag figure by task": {"NUANCED": {"metric": "tag_precision@10", "values": {
          s: 0.7 + float(s) / 10 for s in pos_by_scale}}},
      "task": "POS+NUANCED+COMBINED", "best_on_valid": float(max(pos_by_scale,
                                                                 key=pos_by_scale.get))}}
  file.write_text(json.dumps(data))
  return run


def test_a_switchs_validation_grid_is_chosen_by_the_same_rule(tmp_path, capsys):
  seeds = [_write_grid_run(tmp_path / f"s{i}", {"0.5": 0.44 + d, "1.0": 0.40 + d, "2.0": 0.30})
           for i, d in enumerate((0.0, 0.01, 0.02))]
  runs = [choose.acceptance.load(r) for r in seeds]
  variants = choose.grid_variants("positive_scale", runs)
  assert [v.name for v in variants] == ["positive_scale=1.0", "positive_scale=0.5",
                                        "positive_scale=2.0"]  # the configured value first
  incumbent, half = variants[:2]
  assert abs(incumbent.ndcg["POS"] - 0.41) < 1e-9 and abs(half.ndcg["POS"] - 0.45) < 1e-9
  # tasks the switch leaves alone keep the run's validation table (not the test one)
  assert incumbent.ndcg["NEG"] == half.ndcg["NEG"] == 0.15 and half.seq_ok
  assert abs(incumbent.spread - 0.02) < 1e-9
  # each task's own figure per value rides beside the grid (not ruled on)
  assert abs(half.side["NUANCED tag_precision@10"] - 0.75) < 1e-9
  assert abs(incumbent.side["NUANCED tag_precision@10"] - 0.8) < 1e-9
  chosen, why = choose.choose(variants)  # +0.04 beyond the incumbent's spread of 0.02
  assert chosen is half and "more than" in why
  # a value the evaluation marks as failing its constraint in any seed does not compete
  data = json.loads((tmp_path / "s1" / "results_steering.json").read_text())
  data["results"]["selection"]["positive_scale"].update(
      constraint="tag figures within 0.01", meets_constraint={"0.5": False, "1.0": True,
                                                             "2.0": True})
  (tmp_path / "s1" / "results_steering.json").write_text(json.dumps(data))
  variants = choose.grid_variants("positive_scale", [choose.acceptance.load(r) for r in seeds])
  assert not variants[1].seq_ok and choose.choose(variants)[0] is variants[0]
  assert "(fails tag figures within 0.01)" in choose.table(variants)
  # a margin within the spread keeps the incumbent
  close = [_write_grid_run(tmp_path / f"c{i}", {"0.5": 0.415 + d, "1.0": 0.40 + d})
           for i, d in enumerate((0.0, 0.01, 0.02))]
  assert choose.main(["--grid", "positive_scale", ",".join(close)]) == 0
  out = capsys.readouterr().out
  assert "Chosen: positive_scale=1.0" in out
  lines = [line for line in out.splitlines() if line.startswith("|")]
  assert len({line.count("|") for line in lines}) == 1 and len(lines) == 4  # header, rule, 2 rows
  # a switch of another ranking (DPR + filter) says so in the table's header
  for run in close:
    file = pathlib.Path(run) / "results_steering.json"
    data = json.loads(file.read_text())
    data["results"]["selection"]["filter_positive_scale"] = dict(
        data["results"]["selection"]["positive_scale"], method="dpr+filter")
    file.write_text(json.dumps(data))
  assert choose.main(["--grid", "filter_positive_scale", ",".join(close)]) == 0
  out = capsys.readouterr().out
  assert out.startswith("| variant (validation users, DPR + filter on POS, NUANCED, COMBINED) |")
  assert "Chosen: filter_positive_scale=1.0" in out
  # runs without the grid, or evaluated at different values: a clear error, no table
  plain = _write_run(tmp_path / "plain", 0.40)
  assert choose.main(["--grid", "positive_scale", plain]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "'selection'" in err and "Traceback" not in err
  other = _write_grid_run(tmp_path / "other", {"0.5": 0.4, "1.0": 0.4}, configured=0.5)
  assert choose.main(["--grid", "positive_scale", f"{seeds[0]},{other}"]) == 2
  assert "different positive_scale values" in capsys.readouterr().err
