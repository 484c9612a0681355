"""Atomic writes: a reader sees the old file or the complete new one, never half of one.

Paths may be local or URIs (``gs://bucket/run``): :func:`as_path` turns a config string into a
``pathlib.Path`` or, for a URI, an ``etils.epath.Path`` (``pathlib`` would mangle
``gs://bucket/x`` into ``gs:/bucket/x``). On object stores there is no rename into place: a file
is written directly, which is still all-or-nothing there (a Cloud Storage object becomes visible
only once its upload completes), and :func:`directory` writes into the target folder itself, so
callers write the file that marks the folder complete (e.g. a manifest) last.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from typing import Any, BinaryIO, Callable


def is_uri(path: str | os.PathLike) -> bool:
  """True for ``scheme://...`` paths (gs://, s3://, ...), which are not local files."""
  return "://" in os.fspath(path)


def as_path(path: str | os.PathLike) -> Any:
  """An absolute local ``pathlib.Path`` (``~`` expanded), or an ``etils.epath.Path`` for a URI."""
  if is_uri(path):
    from etils import epath  # pylint: disable=import-outside-toplevel  # installed with orbax

    return epath.Path(os.fspath(path))
  return pathlib.Path(path).expanduser().absolute()


def write_with(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
  """Calls ``write(f)`` on a temporary file in the same folder, then renames it to ``path``.

  For a URI ``write(f)`` goes straight to the object (see the module docstring).
  """
  if is_uri(path):
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
      write(f)
    return
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` (UTF-8) to ``path`` atomically."""
  write_with(path, lambda f: f.write(text.encode("utf-8")))


@contextlib.contextmanager
def directory(path: str | os.PathLike):
  """Yields a temporary folder; on success it replaces ``path`` in one rename.

  For a URI it yields ``path`` itself (emptied first): write the file that marks it complete
  last.
  """
  if is_uri(path):
    path = as_path(path)
    if path.exists():
      path.rmtree()
    path.mkdir(parents=True, exist_ok=True)
    yield path
    return
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
  old = path.with_name(f".{path.name}.old.{os.getpid()}.{os.urandom(4).hex()}")
  try:
    yield tmp
    with contextlib.suppress(FileNotFoundError):
      os.rename(path, old)  # moved aside in one step: readers never see a half-deleted folder
    try:
      os.replace(tmp, path)
    except OSError:  # another writer put its complete folder there in the meantime: keep it
      if not path.is_dir():
        raise
  finally:
    for leftover in (tmp, old):
      if leftover.exists():
        shutil.rmtree(leftover, ignore_errors=True)
