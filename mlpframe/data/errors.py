"""The one exception type for data problems a user can cause and fix."""

from __future__ import annotations


class DataError(Exception):
    """A data problem the user caused and can fix.

    Missing files with downloads off, an unreachable server, a checksum mismatch,
    a corrupt or truncated file, an unsafe archive or pickle, a bad option value.
    The message is one line that says what is wrong and how to fix it (which file
    to put where); the command line prints it and exits with status 2.
    """

    def __init__(self, message: str) -> None:
        # One line, whatever the cause's text looked like.
        super().__init__(" ".join(str(message).split()))
