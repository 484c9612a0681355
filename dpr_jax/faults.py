"""Fault injection for crash-safety tests: die abruptly at a named point of the training loop.

With ``DPR_KILL_AT=<point>:<n>`` in the environment the process SIGKILLs itself the n-th time it
passes ``point(<point>)`` -- no cleanup, no flush, like a preempted VM. Points: ``step`` (after a
jit call of training steps was dispatched) and ``save`` (right after a periodic checkpoint save
was started, while orbax may still be writing it). Unset, :func:`point` only counts.
"""

from __future__ import annotations

import collections
import os
import signal

_counts: collections.Counter = collections.Counter()


def point(name: str) -> None:
  spec = os.environ.get("DPR_KILL_AT")
  if not spec:
    return
  _counts[name] += 1
  target, _, n = spec.partition(":")
  if target == name and _counts[name] == int(n or 1):
    os.kill(os.getpid(), signal.SIGKILL)
