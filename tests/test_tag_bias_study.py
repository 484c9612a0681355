"""launch/tag_bias_study.py: its DPR + filter ranking is the evaluation's, on the shared run."""

import pathlib

import numpy as np
import pytest

from conftest import launch_script


class _Done(Exception):
  pass


def test_the_study_reproduces_the_evaluations_filtered_ranking(dpr_run, run_copy, monkeypatch):
  from dpr_jax.eval import steering as steering_eval
  from dpr_jax.train import run

  config, results = dpr_run
  study = launch_script("tag_bias_study")
  config = run_copy(config)  # the run is shared: eval mode writes the parser's results
  run_dir = pathlib.Path(config.run.dir)
  written = (run_dir / "results_steering.json").read_bytes()
  tables = {}

  def capture(scorer, data, bank, seed, top10, domain=None, read=None, *args, **kwargs):
    tables.update(study.study_tables(scorer, data, bank, seed, top10, domain, read))
    raise _Done

  monkeypatch.setattr(steering_eval, "evaluate_steering", capture)
  with pytest.raises(_Done):
    run.run(config, mode="eval")
  assert (run_dir / "results_steering.json").read_bytes() == written  # nothing rewritten

  scale = config.dpr.filter_positive_scale
  for name in ("POS", "NUANCED"):
    t = tables[name]
    valid = results["steering"]["valid"][name]
    assert t["users"] == valid["users"] and t["not_read"] == 0  # every request read (rules)
    methods = valid["methods"]
    np.testing.assert_allclose(t["filter"], methods["filter"]["ndcg@10"], rtol=1e-5)
    evaluated = t["rows"][f"as evaluated (offset and tags at {scale})"][scale]
    np.testing.assert_allclose(evaluated * t["filter"], methods["dpr+filter"]["ndcg@10"],
                               rtol=1e-5)
    assert set(t["rows"]["tag coordinates only"]) == set(study.TAG_SCALES)
    assert len(t["rarer"]) == len(t["other"]) == len(study.EDGES) - 1
  text = study.markdown(tables)
  assert "## POS" in text and "the selection rule alone" in text
