"""Which rank went silent: heartbeats of the ranks in the rendezvous store.

Every collective has a timeout (TrainerOptions.collective_timeout_seconds), but neither
backend says who never came: gloo raises "Timed out waiting ... for recv" in the waiting
rank and NCCL's watchdog ends the process. So each rank of a multi-rank phase runs a
watch: a daemon thread that, every `beat_interval`, adds one to its own counter in the
rendezvous store (torchrun's TCPStore, which every rank reaches already) and reads its
peers' counters. Counters, not clocks: a peer is silent for as long as its counter has not
moved by this rank's monotonic clock, so clock skew between nodes does not matter.

A peer silent for the whole collective timeout (stopped, frozen, on a lost node) ends this
rank at once with a line that names it, on stderr and in the termination message, so the
pods end and free their GPUs; the executor or the operator retries the stage, which resumes
from its checkpoint. When a collective raises first (it started before the peer went
quiet), `stopped_if_a_peer_is_silent` does the same for the peers not heard for a few beats.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import torch.distributed as torch_dist

from rloop_trainer import termination

log = logging.getLogger(__name__)

REASON = "CollectiveTimeout"
KEY_PREFIX = "rloop/rank-watch/"
SILENT_BEATS = 3  # a peer not heard for this many beats is silent when a collective fails


def beat_interval(collective_timeout: timedelta) -> float:
    """Seconds between beats: a twentieth of the timeout, within 0.2 s and 10 s."""
    return min(max(collective_timeout.total_seconds() / 20, 0.2), 10.0)


@dataclass
class PeerSilence:
    """When this rank last saw each peer's counter move (monotonic seconds)."""

    counters: dict[int, int] = field(default_factory=dict)
    last_moved: dict[int, float] = field(default_factory=dict)

    def observe(self, peer: int, counter: int, now: float) -> None:
        if self.counters.get(peer) != counter:
            self.counters[peer] = counter
            self.last_moved[peer] = now

    def silent_for(self, now: float, at_least: float) -> dict[int, float]:
        """Peers whose counter has not moved for `at_least` seconds -> seconds silent."""
        return {
            peer: now - moved
            for peer, moved in sorted(self.last_moved.items())
            if now - moved >= at_least
        }


def silence_line(rank: int, silent: dict[int, float], collective_timeout: timedelta) -> str:
    """The line, by `rank`, that names the silent peers."""
    peers = ", ".join(f"rank {peer} for {seconds:.0f} s" for peer, seconds in silent.items())
    limit = collective_timeout.total_seconds()
    return (
        f"rank {rank}: collective timeout ({limit:.0f} s): silent (no heartbeat in the "
        f"rendezvous store): {peers}; stopping, so that the stage resumes from its checkpoint"
    )


class CounterStore(Protocol):
    """What the watch needs of a torch.distributed Store."""

    def add(self, key: str, amount: int) -> int: ...


class RankWatch:
    """This rank's heartbeat and its view of its peers' (one per process)."""

    def __init__(self, store: CounterStore, rank: int, world_size: int, timeout: timedelta):
        self.store = store
        self.rank = rank
        self.peers = [peer for peer in range(world_size) if peer != rank]
        self.timeout = timeout
        self.interval = beat_interval(timeout)
        self.silence = PeerSilence()
        self._thread = threading.Thread(target=self._run, name="rank-watch", daemon=True)

    def start(self) -> None:
        self.look(time.monotonic())
        self._thread.start()

    def look(self, now: float) -> None:
        """Beat once and note which peers' counters moved since the last look."""
        self.store.add(f"{KEY_PREFIX}{self.rank}", 1)
        for peer in self.peers:
            self.silence.observe(peer, self.store.add(f"{KEY_PREFIX}{peer}", 0), now)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            try:
                self.look(now)
            except RuntimeError as exc:  # the store's host is gone: the collective timeout ends it
                log.warning("rank watch: the rendezvous store did not answer: %s", exc)
                continue
            silent = self.silence.silent_for(now, self.timeout.total_seconds())
            if silent:
                stop(silence_line(self.rank, silent, self.timeout))

    def silent_peers(self) -> dict[int, float]:
        """Peers not heard for a few beats -> seconds silent."""
        return self.silence.silent_for(time.monotonic(), SILENT_BEATS * self.interval)


def stop(line: str) -> None:
    """Say why on stderr and in the termination message, and end the process now: its main
    thread may be blocked in a collective, and tearing down a process group whose peer is
    gone can block too. A retry can succeed, hence the CLI's retryable exit code."""
    from rloop_trainer.cli import EXIT_RETRYABLE  # the CLI imports no torch: not at the top

    print(line, file=sys.stderr, flush=True)
    termination.write_failure(line, REASON, permanent=False)
    os._exit(EXIT_RETRYABLE)


_watch: RankWatch | None = None


def start_watch(rank: int, world_size: int, timeout: timedelta) -> None:
    """Start this process's watch, on its own connection to the rendezvous store at
    MASTER_ADDR:MASTER_PORT (torchrun's, or rank 0's without torchrun)."""
    global _watch
    store = torch_dist.TCPStore(  # type: ignore[attr-defined]  # public; missing in the stubs
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timeout,
        wait_for_workers=False,
    )
    _watch = RankWatch(store, rank, world_size, timeout)
    _watch.start()


@contextlib.contextmanager
def stopped_if_a_peer_is_silent() -> Iterator[None]:
    """An error inside (a collective that timed out, or one a peer's death broke) while a
    peer is silent ends the process with the line that names that peer; other errors pass."""
    try:
        yield
    except Exception:
        if _watch is not None and (silent := _watch.silent_peers()):
            log.exception("a collective failed while a peer was silent")
            stop(silence_line(_watch.rank, silent, _watch.timeout))
        raise
