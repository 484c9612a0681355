"""Every preset loads, validates and locks; experiment presets change only what they say."""

import importlib.util
import pathlib

import pytest

from dpr_jax import config as config_lib

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("*.py")) + sorted((CONFIGS / "experiments").glob("*.py"))


def _load(path: pathlib.Path, arg=None):
  spec = importlib.util.spec_from_file_location(f"preset_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_preset_loads_validates_and_is_locked(path):
  config = _load(path)
  config_lib.validate(config)
  with pytest.raises(AttributeError):
    config.train.lrr = 1.0  # locked: a typo is an error
  if path.stem != "tiny":
    assert _load(path, "dpr").stages == "1,2,3"


@pytest.mark.parametrize("path", sorted((CONFIGS / "experiments").glob("*.py")),
                         ids=lambda p: p.stem)
def test_an_experiment_preset_differs_from_its_base_in_its_own_fields_and_run_folder(path):
  base = _load(CONFIGS / "ml1m_sasrec.py").to_dict()
  variant = _load(path).to_dict()
  changed = {f"{g}.{k}" for g in base if isinstance(base[g], dict) for k in base[g]
             if base[g][k] != variant[g][k]}
  assert "run.dir" in changed and variant["run"]["dir"] != base["run"]["dir"]
  assert 2 <= len(changed) <= 4  # the run folder and the experiment's own one to three fields
  assert path.stem in variant["run"]["dir"]
