"""The paper's pointwise judge: the judge writes its verdict greedily and ``parse_score`` reads it."""

from __future__ import annotations

from dataclasses import dataclass

from sparta.backends.judging.encoder import JudgeEncoder
from sparta.judge_prompt import parse_score
from sparta.records import JudgeRequest, Judgment


@dataclass(frozen=True)
class GenerateInputs:
    """A greedy completion of ``prompt_ids`` (``messages`` in the judge's template), stopped at ``stop_ids``."""

    messages: list[dict[str, str]]
    prompt_ids: list[int]
    stop_ids: tuple[int, ...]
    max_new_tokens: int


def generate_inputs(encoder: JudgeEncoder, request: JudgeRequest) -> GenerateInputs:
    question = encoder.judge_question(request)
    return GenerateInputs(
        messages=encoder.messages(question),
        prompt_ids=encoder.encode(encoder.chat_prompt(question)),
        stop_ids=encoder.stop_ids,
        max_new_tokens=encoder.config.max_new_tokens,
    )


def generate_judgment(request: JudgeRequest, reply: str) -> Judgment:
    """The reply's score, or the reason it has none; the reply (special tokens left out) is kept as ``raw``."""
    parsed = parse_score(reply)
    return Judgment.of(request, parsed.score, parsed.failure, reply)
