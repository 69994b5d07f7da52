"""One writer per phase output: each attempt claims the output, and one that is no
longer current stops writing.

A retry can start while the failed attempt still runs: locally, a trainer that outlived
its executor; on a cluster, the pods of a failed PyTorchJob still running when the next
one starts. Both would write the same trajectories, checkpoints and policy. So each
attempt has an identity, and before it writes anything it publishes that identity in
`<output>/_WRITER`: the newest attempt always takes over, since it is the one that the
executor or the operator has just started. From then on every write and delete under
the phase's prefixes, on every rank, first reads `_WRITER` back (the store's write
guard, run again before each retry of a write); an attempt that finds another identity
there raises Superseded, so it writes nothing more and never publishes `_SUCCESS`.

The residual race: the check and the write are two calls, not one compare-and-swap (S3
conditional writes are not served by every S3-compatible store). An attempt that passed
its check just before a newer claim landed still completes that one write, within one
request's latency of the claim (botocore's quick re-sends of the request included; the
longer retries check again first). So at most one object per process of a stale attempt
lands after the claim: a trajectory file, a checkpoint file, metrics.jsonl, or a
`_SUCCESS` whose output the stale attempt had completed. The new attempt resumes from an
earlier checkpoint, so it rewrites each such object when it gets there, and it writes
`_SUCCESS` last again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from rloop_trainer import store
from rloop_trainer.errors import MissingObject, Superseded

log = logging.getLogger(__name__)

WRITER_NAME = "_WRITER"


def new_attempt() -> str:
    """An identity no other attempt has: host, process and a random part."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class WriterClaim:
    """This attempt's claim on `owner_uri` (where `_WRITER` lives) and `prefixes`."""

    owner_uri: str
    attempt: str
    prefixes: tuple[str, ...]

    @property
    def uri(self) -> str:
        return store.join(self.owner_uri, WRITER_NAME)

    def covers(self, uri: str) -> bool:
        inside = any(uri == p or uri.startswith(p.rstrip("/") + "/") for p in self.prefixes)
        return inside and uri != self.uri

    def current_writer(self) -> str | None:
        """The attempt that holds the claim now; None if the claim is gone."""
        try:
            document = json.loads(store.read_bytes(self.uri))
        except (MissingObject, ValueError):
            return None
        attempt = document.get("attempt") if isinstance(document, dict) else None
        return str(attempt) if attempt else None

    def check(self, uri: str) -> None:
        """Raise Superseded before a write to `uri` if this attempt no longer holds the claim."""
        if not self.covers(uri):
            return
        writer = self.current_writer()
        if writer != self.attempt:
            holder = f"attempt {writer}" if writer else "nobody (its _WRITER is gone)"
            raise Superseded(
                f"{self.owner_uri} is now claimed by {holder}, not by this attempt "
                f"{self.attempt}; stopping before writing {uri}"
            )


@contextlib.contextmanager
def claimed(
    owner_uri: str, *also: str, attempt: str | None = None, publish: bool = True
) -> Iterator[WriterClaim]:
    """Make `attempt` (a new one by default) the writer of `owner_uri` and the prefixes
    `also`: publish the claim (`publish=False` on ranks that only check it), then guard
    every store write inside the block with it."""
    claim = WriterClaim(owner_uri, attempt or new_attempt(), (owner_uri, *also))
    store.set_write_guard(None)
    if publish:
        started = datetime.now(UTC).isoformat()
        document = {"attempt": claim.attempt, "started_at": started}
        store.write_bytes(claim.uri, json.dumps(document).encode())
        log.info("attempt %s claims %s", claim.attempt, owner_uri)
    store.set_write_guard(claim.check)
    try:
        yield claim
    finally:
        store.set_write_guard(None)
