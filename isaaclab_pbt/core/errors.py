"""The one exception type for bad input: a setting, flag or file the user can fix.

Library code raises :class:`UsageError` (or a subclass) with a one-line message that names the
field and what is allowed; only the command-line entry points turn it into that line on stderr
and exit code 2, so code that imports the package never sees a ``SystemExit``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, TypeVar

T = TypeVar("T")


class UsageError(ValueError):
    """Bad input, described in one line that names the field and what is allowed."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are :class:`UsageError` (one line, no usage dump), so entry points report them alike."""

    def error(self, message: str):
        raise UsageError(message)


def command_line(prog: str, run: Callable[[], T]) -> T:
    """Run a command-line entry point: a :class:`UsageError` becomes ``prog: error: <message>`` and exit code 2."""
    try:
        return run()
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
