"""The one base class of errors meant for the person running sparta.

A :class:`SpartaError` says what is wrong with the input (a file, a line, a field) and how to fix it; the command
line prints its message and exits with status 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class SpartaError(Exception):
    """A problem the user can fix: a bad configuration, data file, run directory or environment."""
