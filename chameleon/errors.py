"""User-facing errors: one line that says what went wrong and what to do."""

from __future__ import annotations


class ChameleonError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints ``str(error)`` as a single line and exits with ``exit_code``; no traceback.
    """

    exit_code = 1


class UsageError(ChameleonError):
    """Unknown name or invalid option value (exit code 2, like a bad command-line flag)."""

    exit_code = 2
