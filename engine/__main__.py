"""`python -m engine` = the `engine` command."""

from engine.cli import entry

entry()
