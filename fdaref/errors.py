"""The error types fdaref raises on purpose.

``InputError`` is bad input the user can fix (a shape, a dtype, a parameter, a missing or corrupt file, an
unwritable path). The CLI prints its message as one line and exits with status 2; anything else is a bug and
keeps its traceback. Every module's own error type derives from one of these two.
"""
from __future__ import annotations


class FdarefError(Exception):
    """Base of every error fdaref raises deliberately."""


class InputError(FdarefError, ValueError):
    """Bad input: the message names the argument or file and says what was expected (CLI exit status 2)."""
