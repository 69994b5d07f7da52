"""Errors a person must act on: bad input files, unreachable stores, missing models."""


class PhaseError(RuntimeError):
    """A phase cannot go on; the message names the path or field and the fix."""


class MissingObject(PhaseError):
    """A file or object that a phase reads does not exist."""


class StoreUnavailable(PhaseError):
    """The object store did not answer for the whole retry window; later it may."""
