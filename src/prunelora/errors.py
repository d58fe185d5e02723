"""Errors a user can cause. The CLI prints their one-line message and exits with status 2."""

from __future__ import annotations


class PruneLoRAError(Exception):
    """Base of every error caused by bad input (never by a bug in prunelora)."""


class InvalidInputError(PruneLoRAError, ValueError):
    """A value, option or file content that prunelora does not accept."""


class MissingFileError(PruneLoRAError, FileNotFoundError):
    """A file or directory that should exist does not."""

    def __str__(self) -> str:  # FileNotFoundError would otherwise print "[Errno ...]" tuples
        return str(self.args[0]) if self.args else ""


class CheckpointError(InvalidInputError):
    """A checkpoint that is truncated, not safetensors, or does not fit the expected model."""


class OutputError(PruneLoRAError, OSError):
    """An output that cannot be written: a read-only or full disk, a parent that is a file, a
    dangling symbolic link. Reported before any work where it can be foreseen."""
