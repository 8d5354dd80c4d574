"""How an evaluation scores a response, on [0, 1]: a registry chosen by each task spec's ``scorer``.

``answer``  the task's gold answer, checked by ``sparta.tasks.score_answer`` (1 right, 0 wrong or no answer);
            only items with a gold answer are evaluated.
``judge``   a fixed judge model scores each response 1-10 with the run's judge type (``judge.type``); the
            reference answer, when the item has one, is shown to it after the instruction. The score becomes
            (s - 1) / 9. A judgment that cannot be read is excluded and counted, never defaulted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sparta.backends.base import Progress, _no_progress
from sparta.config import JudgeConfig
from sparta.records import Instruction, JudgeRequest, Response
from sparta.registry import Registry
from sparta.tasks import score_answer

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool


@dataclass(frozen=True)
class ItemScore:
    """One response's score on [0, 1], or None with the reason it has none; ``raw`` is the judge's own output."""

    score: float | None
    failure: str | None = None
    raw: str | None = None


class ItemScorer(Protocol):
    def score(
        self, items: Sequence[Instruction], responses: Sequence[Response], progress: Progress = _no_progress
    ) -> list[ItemScore]: ...


@dataclass(frozen=True)
class ScorerKind:
    """A scorer and what it needs: gold answers, a judge model; ``build(pool, judge config, judge member)``.

    ``binary``: every score is 0 or 1, so two rounds are also compared with McNemar's exact test.
    """

    build: Callable[[ModelPool, JudgeConfig, str | None], ItemScorer]
    needs_gold: bool
    needs_judge: bool
    binary: bool = False


EVAL_SCORERS: Registry[ScorerKind] = Registry("evaluation scorer")


class AnswerScorer:
    """Exact checks against gold answers; no model involved."""

    def score(
        self, items: Sequence[Instruction], responses: Sequence[Response], progress: Progress = _no_progress
    ) -> list[ItemScore]:
        scores = []
        for item, response in zip(items, responses, strict=True):
            scores.append(ItemScore(score_answer(item.answer_type, response.text, item.answer)))
            progress(1)
        return scores


EVAL_SCORERS.register("answer")(
    ScorerKind(lambda pool, judge, member: AnswerScorer(), needs_gold=True, needs_judge=False, binary=True)
)


def with_reference(item: Instruction) -> Instruction:
    """The instruction as the judge sees it: with the reference answer after it when there is one."""
    if item.answer is None:
        return item
    text = f"{item.text.rstrip()}\n\n[Reference answer]\n{item.answer}"
    return Instruction(
        id=item.id, text=text, domain=item.domain, answer=item.answer, answer_type=item.answer_type, meta=item.meta
    )


def normalise(score: float) -> float:
    """A 1-10 judge score on [0, 1]."""
    return min(1.0, max(0.0, (score - 1.0) / 9.0))


class JudgeScorer:
    """One judge member of the evaluation pool scores every response (``judge.type`` picks how)."""

    def __init__(self, pool: ModelPool, judge: JudgeConfig, member: str) -> None:
        from sparta.backends.base import JUDGES

        self.member = member
        self.judge = JUDGES.get(judge.type)(pool, judge)

    def score(
        self, items: Sequence[Instruction], responses: Sequence[Response], progress: Progress = _no_progress
    ) -> list[ItemScore]:
        requests = [
            JudgeRequest(self.member, with_reference(item), response)
            for item, response in zip(items, responses, strict=True)
        ]
        judgments = self.judge.score(requests, progress)
        return [ItemScore(None if j.score is None else normalise(j.score), j.failure, j.raw) for j in judgments]


EVAL_SCORERS.register("judge")(ScorerKind(lambda pool, judge, member: JudgeScorer(pool, judge, member), False, True))
