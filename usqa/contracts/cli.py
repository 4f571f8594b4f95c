"""What every subcommand of the `usqa` command shares, wherever its module lives."""

from __future__ import annotations


class UsageError(Exception):
    """A user mistake on the command line: printed as one line, exit code 2."""
