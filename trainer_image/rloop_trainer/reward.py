"""Verifiable rewards: the answer a response commits to, math-verify's verdict on it,
+1/-1, and DAPO's soft overlong penalty.

Only the answer the response commits to is graded (`answer_format`): the last
`\\boxed{}` (Qwen-Math's convention) or the last `Answer:` line (the DAPO-17k prompt
asks for "Answer: $Answer"). A number anywhere else is never graded: math-verify on a
whole response grades its last number, so "Let x = 5. Then ... I give up." would
count for gold 5. `any` keeps that whole-response grading for base models that
follow no format.

math-verify's own timeouts use SIGALRM (main thread only) and raise a
BaseException, and a pathological answer can still spin in C code where no signal
lands. So every check runs in a worker process of our own, one task at a time,
with a wall-clock limit: a worker that overruns is killed and replaced and its
answer counts as wrong. A parse error, a crash or a timeout is "wrong", never a
crashed or stuck phase.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from rloop_contract.sections import AnswerFormat

if TYPE_CHECKING:  # the spawned verifier workers import this module: no torch there
    from rloop_trainer.rollout.base import Completion

log = logging.getLogger(__name__)

_MATH_VERIFY_TIMEOUT_S = 5
# The longest answer of MATH-500 has 159 characters (verl's math_dapo.py); a longer
# "answer" is a runaway generation, wrong without spending a worker's time on it.
MAX_ANSWER_CHARS = 1000
# verl's Minerva pattern (math_dapo.py): what follows the last "Answer:" on its line.
_ANSWER_LINE = re.compile(r"(?i)answer\s*:[ \t]*([^\n]*)")


def last_boxed(text: str) -> str | None:
    """The content of the LAST `\\boxed{...}` in `text` (balanced braces), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    begin = start + len("\\boxed{")
    for position in range(begin - 1, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:position]
    return None


def last_answer_line(text: str) -> str | None:
    """What follows the last `Answer:` on its line, without Markdown emphasis, math
    delimiters or a final full stop: `**Answer:** $\\frac{1}{2}$.` -> `\\frac{1}{2}`."""
    matches = _ANSWER_LINE.findall(text)
    if not matches:
        return None
    answer: str = matches[-1].strip().strip("*").strip().removesuffix(".").strip()
    if answer.startswith("\\(") and answer.endswith("\\)"):
        answer = answer[2:-2]
    return answer.strip("$").strip()


def gradable_answer(response: str, answer_format: AnswerFormat) -> str | None:
    """The text math-verify parses for `response`, or None when the response commits to
    no answer in `answer_format` (then it is wrong without a check)."""
    if answer_format == "any":
        boxed = last_boxed(response)
        return response if boxed is None else f"\\boxed{{{boxed}}}"
    answer = last_boxed(response) if answer_format != "answer-line" else None
    if answer is None and answer_format != "boxed":
        answer = last_answer_line(response)
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    return f"\\boxed{{{answer}}}"


def is_correct(answer: str, ground_truth: str) -> bool:
    """math-verify's verdict on a `gradable_answer`, gold first; runs in the calling
    process (use a Verifier)."""
    from math_verify import parse, verify

    try:
        prediction = parse(answer, parsing_timeout=_MATH_VERIFY_TIMEOUT_S)
        gold = parse(f"\\boxed{{{ground_truth}}}", parsing_timeout=_MATH_VERIFY_TIMEOUT_S)
        if not gold or not prediction:
            return False
        return bool(verify(gold, prediction, timeout_seconds=_MATH_VERIFY_TIMEOUT_S))
    except BaseException:  # math-verify's TimeoutException is a BaseException
        return False


def _worker_main(connection: Connection) -> None:
    import math_verify  # noqa: F401  (warm the import before saying ready)

    connection.send(("ready", False))
    while True:
        try:
            task = connection.recv()
        except EOFError:
            return  # the trainer is gone (e.g. it stopped at once, rank_watch.stop): so are we
        if task is None:
            return
        index, answer, ground_truth = task
        connection.send((index, is_correct(answer, ground_truth)))


class _Worker:
    def __init__(self, context: Any) -> None:
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child_end,), daemon=True)
        self.process.start()
        child_end.close()
        self.ready = False
        self.task: int | None = None
        self.started_at = 0.0

    def assign(self, index: int, answer: str, ground_truth: str) -> None:
        self.connection.send((index, answer, ground_truth))
        self.task = index
        self.started_at = time.monotonic()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.connection.close()


class Verifier:
    """A pool of verifier processes with a per-answer wall-clock limit."""

    def __init__(self, workers: int | None = None, timeout_s: float = 15.0) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.timeout_s = timeout_s
        count = workers or min(8, os.cpu_count() or 1)
        self.workers = [_Worker(self.context) for _ in range(count)]

    def score(self, answers: Sequence[str | None], ground_truths: Sequence[str]) -> list[bool]:
        """math-verify's verdict on each `gradable_answer`; None is wrong unchecked. Each
        distinct (answer, ground truth) is checked once: a group's rollouts and a
        problem's evaluation samples often commit to the same answer."""
        if len(answers) != len(ground_truths):
            raise ValueError(f"{len(answers)} answers but {len(ground_truths)} ground truths")
        holders: dict[tuple[str, str], list[int]] = {}
        for index, answer in enumerate(answers):
            if answer is not None:
                holders.setdefault((answer, ground_truths[index]), []).append(index)
        checked = self._check(list(holders))
        verdicts = [False] * len(answers)
        for indices, verdict in zip(holders.values(), checked, strict=True):
            for index in indices:
                verdicts[index] = verdict
        return verdicts

    def _check(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """The verdict on each (answer, ground truth), each on a worker within the limit."""
        answers = [answer for answer, _ in pairs]
        verdicts = [False] * len(pairs)
        queue = deque(range(len(pairs)))
        while queue or any(worker.task is not None for worker in self.workers):
            for worker in self.workers:
                if worker.ready and worker.task is None and queue:
                    index = queue.popleft()
                    worker.assign(index, *pairs[index])
            for connection in wait([worker.connection for worker in self.workers], timeout=0.2):
                self._receive(next(w for w in self.workers if w.connection is connection), verdicts)
            self._replace_overdue(answers)
        return verdicts

    def _receive(self, worker: _Worker, verdicts: list[bool]) -> None:
        try:
            index, verdict = worker.connection.recv()
        except (EOFError, OSError) as exc:
            if not worker.ready:
                raise RuntimeError(
                    "a math-verify worker process died while starting; see its stderr above"
                ) from exc
            log.warning("verifier worker died on answer %s; counting it wrong", worker.task)
            self._replace(worker)
            return
        if index == "ready":
            worker.ready = True
            return
        verdicts[index] = verdict
        worker.task = None

    def _replace_overdue(self, answers: Sequence[str | None]) -> None:
        now = time.monotonic()
        for worker in list(self.workers):
            if worker.task is not None and now - worker.started_at > self.timeout_s:
                log.warning(
                    "math-verify took over %.0fs on answer %d (%r...); counting it wrong",
                    self.timeout_s,
                    worker.task,
                    str(answers[worker.task])[:80],
                )
                self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self.workers[self.workers.index(worker)] = _Worker(self.context)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.workers = []


_shared: Verifier | None = None


def shared_verifier() -> Verifier:
    """The process-wide pool; call early to start its workers while other setup runs."""
    global _shared
    if _shared is None:
        _shared = Verifier()
        atexit.register(_shared.close)
    return _shared


def score_correct(answers: Sequence[str | None], ground_truths: Sequence[str]) -> list[bool]:
    """Verified correctness of each `gradable_answer` against its ground truth (a shared pool)."""
    return shared_verifier().score(answers, ground_truths)


@dataclass(frozen=True)
class Verdict:
    """How one completion fares: `verified` grades its answer (the reward, as DAPO's
    reward manager scores it, truncated or not); `correct` also needs the response to
    have ended (EOS), since a response cut at the token limit never finished its
    argument. `correct` is the success the filter, dynamic sampling and eval count."""

    verified: bool
    finished: bool

    @property
    def correct(self) -> bool:
        return self.verified and self.finished


def grade(
    completions: Sequence[Completion], ground_truths: Sequence[str], answer_format: AnswerFormat
) -> list[Verdict]:
    """The verdict of each completion against its ground truth (the shared pool)."""
    answers = [gradable_answer(completion.text, answer_format) for completion in completions]
    verified = score_correct(answers, ground_truths)
    return [
        Verdict(ok, not completion.truncated)
        for ok, completion in zip(verified, completions, strict=True)
    ]


def overlong_penalty(length: int, max_len: int, buffer: int, penalty: float) -> float:
    """DAPO soft overlong punishment (Yu et al. 2025, eq. 13): 0 up to max_len - buffer,
    then falling linearly to -penalty at max_len."""
    if buffer <= 0:
        return 0.0
    excess = length - (max_len - buffer)
    return min(-excess / buffer * penalty, 0.0)


def shaped_reward(correct: bool, length: int, max_len: int, buffer: int, penalty: float) -> float:
    """+1 correct / -1 wrong, plus the overlong penalty."""
    return (1.0 if correct else -1.0) + overlong_penalty(length, max_len, buffer, penalty)
