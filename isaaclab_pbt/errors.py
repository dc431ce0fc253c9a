"""The one exception type for bad input: a setting, flag or file the user can fix.

Library code raises :class:`UsageError` (or a subclass) with a one-line message that names the
field and what is allowed; only the command-line entry points turn it into that line on stderr
and exit code 2, so code that imports the package never sees a ``SystemExit``.
"""


class UsageError(ValueError):
    """Bad input, described in one line that names the field and what is allowed."""
