"""A failed child's pods say, in the trainer's words, whether a retry can succeed."""

from __future__ import annotations

from rloop_operator.api import Stage
from rloop_operator.children import Child
from rloop_operator.launchers import ChildPhase
from rloop_operator.pods import Exit, PodState
from rloop_operator.trainer_failures import with_trainer_failure
from rloop_trainer.termination import failure_message

RL = "demo-i00-rl"
LINE = "rloop-trainer dapo: s3://bucket/data/train.parquet does not exist; check data.train"


def failed(phase: ChildPhase = ChildPhase.FAILED) -> Child:
    return Child(RL, "PyTorchJob", 0, Stage.EXPLORING, phase, "Failed", "PyTorchJob failed")


def pods(*exits: tuple[int, str]) -> dict[str, tuple[PodState, ...]]:
    return {
        RL: tuple(
            PodState(f"{RL}-{i}", "Failed", exits=(Exit("pytorch", code, message),))
            for i, (code, message) in enumerate(exits)
        )
    }


def test_a_permanent_failure_is_the_childs_reason_and_message() -> None:
    message = failure_message(LINE, "InvalidInput", permanent=True).decode()
    child = with_trainer_failure(failed(), pods((1, "Traceback ..."), (3, message)))
    assert (child.reason, child.message, child.permanent) == ("InvalidInput", LINE, True)


def test_a_retryable_failure_keeps_the_trainers_words_and_is_retried() -> None:
    message = failure_message("S3 unreachable", "StoreUnavailable", permanent=False).decode()
    child = with_trainer_failure(failed(), pods((1, message)))
    assert (child.reason, child.message, child.permanent) == (
        "StoreUnavailable", "S3 unreachable", False,
    )  # fmt: skip


def test_a_crash_or_an_oom_kill_leaves_the_child_as_its_controller_said() -> None:
    assert with_trainer_failure(failed(), pods((137, ""), (1, "Traceback ..."))) == failed()


def test_pods_that_were_not_read_or_a_child_that_did_not_fail_change_nothing() -> None:
    message = failure_message(LINE, "InvalidInput", permanent=True).decode()
    assert with_trainer_failure(failed(), {}) == failed()
    running = failed(ChildPhase.RUNNING)
    assert with_trainer_failure(running, pods((3, message))) == running
