"""A failed child's pods say, in the trainer's words, whether a retry can succeed."""

from __future__ import annotations

import json

from rloop_operator.children import Child
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.pods import Exit, PodState
from rloop_operator.trainer_failures import (
    TrainerFailure,
    failed_permanently,
    failure_from_messages,
    with_trainer_failure,
)
from rloop_trainer.termination import failure_message

RL = "demo-i00-rl"
LINE = "rloop-trainer dapo: s3://bucket/data/train.parquet does not exist; check data.train"


def failed(phase: Phase = Phase.FAILED) -> Child:
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
    running = failed(Phase.RUNNING)
    assert with_trainer_failure(running, pods((3, message))) == running


def test_a_running_child_whose_pod_the_trainer_stopped_for_good_has_failed() -> None:
    message = failure_message(LINE, "InvalidInput", permanent=True).decode()
    child = failed_permanently(failed(Phase.RUNNING), pods((1, "Traceback ..."), (3, message)))
    assert child is not None
    assert (child.phase, child.reason, child.message, child.permanent) == (
        Phase.FAILED, "InvalidInput", LINE, True,
    )  # fmt: skip


def test_a_running_child_with_a_retryable_or_no_failure_goes_on() -> None:
    retryable = failure_message("S3 unreachable", "StoreUnavailable", permanent=False).decode()
    running = failed(Phase.RUNNING)
    assert failed_permanently(running, pods((1, retryable))) is None
    assert failed_permanently(running, pods((137, ""))) is None
    assert failed_permanently(running, {}) is None


def test_a_finished_child_is_left_to_its_controllers_verdict() -> None:
    message = failure_message(LINE, "InvalidInput", permanent=True).decode()
    assert failed_permanently(failed(), pods((3, message))) is None


def failure(error: str, reason: str, permanent: bool) -> str:
    """A termination message as rloop_trainer.termination.write_failure leaves it."""
    return json.dumps({"error": error, "reason": reason, "permanent": permanent})


def test_the_trainers_failure_is_read_from_a_termination_message() -> None:
    line = "rloop-trainer dapo: s3://b/train.parquet does not exist; check the URI"
    found = failure_from_messages([failure(line, "InvalidInput", True)])
    assert found == TrainerFailure(line, "InvalidInput", permanent=True)


def test_one_pod_that_says_permanent_makes_the_failure_permanent() -> None:
    messages = [
        "Traceback (most recent call last): ...",
        failure("rloop-trainer dapo: cannot reach the object store", "StoreUnavailable", False),
        failure("rloop-trainer dapo: policy s3://b/p has no config.json", "InvalidInput", True),
    ]
    found = failure_from_messages(messages)
    assert found is not None and found.permanent and "config.json" in found.message


def test_a_transient_failure_is_not_permanent() -> None:
    line = "rloop-trainer rft: cannot reach the object store"
    found = failure_from_messages([failure(line, "StoreUnavailable", False)])
    assert found == TrainerFailure(line, "StoreUnavailable", permanent=False)


def test_reports_crashes_and_cut_messages_are_not_failures() -> None:
    messages = [
        '{"rollouts": 8, "hard_prompts": 1, "kept_samples": 2}',
        "Traceback (most recent call last): ...",
        '{"error": "rloop-trainer dapo: s3://b/tr',  # cut by the kubelet
        "[1, 2]",
    ]
    assert failure_from_messages(messages) is None
    assert failure_from_messages([]) is None
