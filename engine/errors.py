"""Errors of the engine package: one root, leaves that also inherit the matching builtin."""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error raised by `engine`."""


class UsageError(EngineError, ValueError):
    """Bad command-line usage or a bad user-supplied value (exit code 2)."""
