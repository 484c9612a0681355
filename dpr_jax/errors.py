"""User-facing errors.

Anything that is the *user's* mistake (a malformed data line, a missing directory, a bad config
value) raises a subclass of :class:`UserError`. Entry points catch it and print one line,
``error: <message>``, then exit with status 2 -- no traceback. Everything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
  """Base class of errors caused by user input; printed as one line, exit status 2."""


class DataError(UserError):
  """Bad or missing data. The message names the file (and line, where there is one)."""


class ConfigError(UserError):
  """A config value that cannot work (e.g. a mesh that does not divide the device count)."""


class CheckpointError(UserError):
  """A checkpoint that cannot be used with this config."""
