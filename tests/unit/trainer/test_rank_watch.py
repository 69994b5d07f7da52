"""Which peer went silent, from the counters the ranks add to in the rendezvous store."""

from __future__ import annotations

from datetime import timedelta

from rloop_trainer.rank_watch import PeerSilence, RankWatch, beat_interval, silence_line


class CountingStore:
    """A rendezvous store's counters (torch.distributed.Store.add)."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}

    def add(self, key: str, amount: int) -> int:
        self.counters[key] = self.counters.get(key, 0) + amount
        return self.counters[key]


def test_a_peer_is_silent_once_its_counter_has_not_moved_for_the_limit() -> None:
    silence = PeerSilence()
    silence.observe(peer=1, counter=1, now=0.0)
    silence.observe(peer=2, counter=1, now=0.0)
    for now in (5.0, 10.0, 15.0, 20.0):
        silence.observe(peer=1, counter=int(now), now=now)  # beats
        silence.observe(peer=2, counter=1, now=now)  # stopped at 0 s

    assert silence.silent_for(now=20.0, at_least=20.0) == {2: 20.0}
    assert silence.silent_for(now=19.0, at_least=20.0) == {}


def test_the_watch_beats_and_reads_every_peer_but_itself() -> None:
    store = CountingStore()
    watch = RankWatch(store, rank=1, world_size=3, timeout=timedelta(seconds=60))

    watch.look(now=0.0)
    store.add("rloop/rank-watch/0", 1)  # rank 0 beats; rank 2 never does
    watch.look(now=30.0)

    assert store.counters["rloop/rank-watch/1"] == 2
    assert watch.silence.silent_for(now=30.0, at_least=30.0) == {2: 30.0}


def test_the_line_names_the_rank_that_says_it_and_each_silent_peer() -> None:
    line = silence_line(0, {1: 31.4, 3: 1800.2}, timedelta(minutes=30))

    assert line == (
        "rank 0: collective timeout (1800 s): silent (no heartbeat in the rendezvous store): "
        "rank 1 for 31 s, rank 3 for 1800 s; stopping, so that the stage resumes from its "
        "checkpoint"
    )


def test_beats_come_often_enough_to_tell_a_silent_peer_well_within_the_timeout() -> None:
    assert beat_interval(timedelta(minutes=30)) == 10.0
    assert beat_interval(timedelta(seconds=20)) == 1.0
    assert beat_interval(timedelta(seconds=1)) == 0.2
