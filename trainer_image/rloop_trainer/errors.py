"""Errors a person must act on: bad input files, unreachable stores, missing models."""


class PhaseError(RuntimeError):
    """A phase cannot go on; the message names the path or field and the fix."""
