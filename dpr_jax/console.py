"""What a run prints: library log levels and progress bars.

``quiet_libraries()`` keeps absl's and orbax's INFO lines (checkpoint-manager dumps, save threads)
off the console unless ``--verbosity`` asks for them; the project's own messages still show.
``StepBar`` is the progress bar of every training loop: it counts optimizer steps, and its rate and
ETA are the average over the run since the first (compiling) call, so steps that arrive in scanned
bursts of ``steps_per_call`` do not make the ETA swing.
"""

from __future__ import annotations

import logging

from tqdm.auto import tqdm


def quiet_libraries(verbose: bool = False) -> None:
  """Own INFO messages on; absl/orbax (logger "absl"), jax and matplotlib at WARNING unless
  ``verbose``.

  absl's ``set_verbosity`` (what ``--verbosity`` drives) moves the root logger and resets the
  "absl" logger to inherit from it when absl's handler is installed, so the "absl" logger's own
  level is set last.
  """
  if not verbose:
    try:
      from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
      absl_logging.set_verbosity(absl_logging.WARNING)
    except ImportError:
      pass
  logging.getLogger().setLevel(logging.INFO)
  if not verbose:
    for name in ("absl", "jax", "matplotlib"):  # orbax logs through absl; jax's backend
      # probing and matplotlib's font cache at INFO
      logging.getLogger(name).setLevel(logging.WARNING)


class StepBar:
  """A tqdm bar over optimizer steps (``update(n)`` after each call of n steps).

  The first call includes compilation: once it is done the rate clock restarts, and the rate is
  the run's average (``smoothing=0``), not the last burst's.
  """

  def __init__(self, total: int, initial: int, desc: str, disable: bool):
    self._bar = tqdm(total=total, initial=initial, unit="step", desc=desc, disable=disable,
                     smoothing=0, dynamic_ncols=True)
    self._first = True

  def update(self, n: int) -> None:
    self._bar.update(n)
    if self._first and not self._bar.disable:  # restart the average after compilation
      self._bar.start_t = self._bar._time()  # pylint: disable=protected-access
      self._bar.initial = self._bar.n
    self._first = False

  def set_postfix(self, **kw) -> None:
    self._bar.set_postfix(**kw)

  def close(self) -> None:
    self._bar.close()


class Phases:
  """A bar over the phases of a long computation: ``start(name)`` closes the previous phase."""

  def __init__(self, total: int, desc: str, disable: bool):
    self._bar = tqdm(total=total, desc=desc, unit="phase", disable=disable, dynamic_ncols=True)
    self._open = False

  def start(self, name: str) -> None:
    if self._open:
      self._bar.update(1)
    self._bar.set_postfix_str(name)
    self._open = True

  def close(self) -> None:
    if self._open:
      self._bar.update(1)
    self._bar.close()
