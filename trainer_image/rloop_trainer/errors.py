"""Errors a person must act on: bad input files, unreachable stores, missing models.

Whether a retry can help is part of the error: the CLI turns it into the exit code and
the termination message, and the operator retries only what is not `permanent`.
"""

from __future__ import annotations


class PhaseError(RuntimeError):
    """A phase cannot go on; the message names the path or field and the fix.

    Permanent: the same input fails the same way again (bad data, a missing file,
    a policy that does not load, credentials the store refuses).
    """

    reason = "InvalidInput"
    permanent = True


class MissingObject(PhaseError):
    """A file or object that a phase reads does not exist."""

    @classmethod
    def at(cls, uri: str) -> MissingObject:
        return cls(f"{uri} does not exist; check the URI or run the phase that writes it")


class StoreUnavailable(PhaseError):
    """The object store did not answer for the whole retry window; later it may."""

    reason = "StoreUnavailable"
    permanent = False


class Superseded(PhaseError):
    """A newer attempt claimed this phase's output: this one stops writing and exits.

    Not permanent: the attempt that holds the claim goes on, and a retry would claim
    the output back and resume from its checkpoints.
    """

    reason = "Superseded"
    permanent = False
