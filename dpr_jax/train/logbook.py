"""Where a run's scalars go: metrics.jsonl (one JSON object a line) and TensorBoard."""

from __future__ import annotations

import json
import pathlib

from dpr_jax import atomic


class Logbook:
  """Appends scalars to ``<run_dir>/metrics.jsonl`` and TensorBoard (process 0 only)."""

  def __init__(self, run_dir: str | pathlib.Path, enabled: bool = True):
    self.enabled = enabled
    self.path = atomic.as_path(run_dir) / "metrics.jsonl"  # local, or gs://
    self._tb = None
    if enabled:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      try:
        import tensorflow as tf

        self._tb = tf.summary.create_file_writer(str(self.path.parent / "tensorboard"))
      except ImportError:  # TensorBoard is optional; the JSONL is the record.
        self._tb = None

  def write(self, step: int, scalars: dict[str, float], **extra) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **extra, **{k: float(v) for k, v in scalars.items()}}
    line = json.dumps(record) + "\n"
    if atomic.is_uri(self.path):  # object stores cannot append: rewrite the (small) file
      before = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
      self.path.write_text(before + line, encoding="utf-8")
    else:
      with open(self.path, "a", encoding="utf-8") as f:
        f.write(line)
    if self._tb is not None:
      import tensorflow as tf

      with self._tb.as_default(step=int(step)):
        for k, v in scalars.items():
          tf.summary.scalar(k, float(v))
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
