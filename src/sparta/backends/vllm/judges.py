"""The three judges on vLLM's completions API, scoring exactly the token ids the HF engine scores.

What to feed and what to read comes from the HF judges of ``sparta.backends.hf.judges`` (prompt text, score
tokens, the response's targets with or without the turn end, the score arithmetic); only the forward passes move
to the server:

- ``generate``   greedy completion of the judge prompt's ids, stopped at the judge's turn end or eos; the reply is
                 parsed as on HF;
- ``logprob``    one completion of one token on the ids pre-filled up to the score, with ``logprob_token_ids`` =
                 the score tokens (full-vocabulary log-probabilities of just those ids). When "10" is "1" + "0", a
                 second request on the same ids + "1" reads the digit tokens, giving P("0" | "1") and
                 P(no further digit | "1") exactly as the HF judge's masks do;
- ``likelihood`` ``echo`` with ``max_tokens: 0`` and ``logprobs: 0`` on context + response ids: the prompt
                 log-probabilities of the response's tokens.

Every request is sent at once (the server batches them); judgments come back in request order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sparta.backends.base import JUDGES, Progress, _no_progress
from sparta.backends.hf.judges import ScoreTokens, _encode, _judgment
from sparta.backends.hf.pool import ModelPool
from sparta.backends.vllm.adapters import AdapterSet
from sparta.backends.vllm.client import Call, VllmClient
from sparta.backends.vllm.errors import RequestFailedError
from sparta.backends.vllm.generation import NEUTRAL_SAMPLING, generated_ids
from sparta.config import JudgeConfig
from sparta.judge_prompt import SCORES, expected_score, parse_score, score_distribution
from sparta.records import JudgeRequest, Judgment
from sparta.registry import Registry

STAGE = "judging"
_COMPLETIONS = "/v1/completions"


@dataclass
class _Plan:
    """The calls one judge request needs (none for an empty response) and how their answers become a judgment."""

    calls: list[Call]
    finish: Callable[[list[dict[str, Any]]], Judgment]


class _ServerJudge:
    """Sends every request's calls at once and assembles the judgments in request order."""

    hf_judge: str = ""

    def __init__(self, pool: ModelPool, config: JudgeConfig, client: VllmClient, adapters: AdapterSet) -> None:
        self.pool = pool
        self.config = config
        self.client = client
        self.adapters = adapters
        self.oracle = JUDGES.get(self.hf_judge)(pool, config)  # what to feed and read, shared with the HF engine

    def score(self, requests: Sequence[JudgeRequest], progress: Progress = _no_progress) -> list[Judgment]:
        plans = [self.plan(r) for r in requests]
        owner = [i for i, plan in enumerate(plans) for _ in plan.calls]
        remaining = [len(plan.calls) for plan in plans]
        progress(sum(1 for n in remaining if n == 0))

        def done(call_index: int) -> None:
            remaining[owner[call_index]] -= 1
            if remaining[owner[call_index]] == 0:
                progress(1)

        answers = self.client.run([c for plan in plans for c in plan.calls], done)
        judged, start = [], 0
        for plan in plans:
            judged.append(plan.finish(answers[start : start + len(plan.calls)]))
            start += len(plan.calls)
        return judged

    def plan(self, request: JudgeRequest) -> _Plan:
        raise NotImplementedError

    def _call(self, member: str, body: dict[str, Any]) -> Call:
        return Call(_COMPLETIONS, {"model": self.adapters.name(member), **body}, member, STAGE)


def _label_logprobs(answer: dict[str, Any], ids: Sequence[int], what: str) -> dict[int, float]:
    """The log-probabilities of ``ids`` at the one generated position (``logprob_token_ids``)."""
    try:
        read = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        by_id = {int(key.rsplit(":", 1)[1]): float(value) for key, value in read.items()}
        return {i: by_id[i] for i in ids}
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise RequestFailedError(f"{what}: no log-probabilities for the score tokens in the answer ({err!r})") from None


# --------------------------------------------------------------------------------------------- generate


class GenerateJudge(_ServerJudge):
    """The judge writes its verdict greedily; ``parse_score`` reads it."""

    hf_judge = "generate"

    def plan(self, request: JudgeRequest) -> _Plan:
        member = request.judge
        tokenizer = self.pool.tokenizer(member)
        stops = {self.oracle.turn_end(member)} | ({tokenizer.eos_token_id} - {None})
        body = {
            "prompt": _encode(tokenizer, self.oracle._judge_prompt(member, request)),
            "max_tokens": self.config.max_new_tokens,
            "temperature": 0.0,
            **NEUTRAL_SAMPLING,
            "stop_token_ids": sorted(stops),
            "return_token_ids": True,
        }

        def finish(answers: list[dict[str, Any]]) -> Judgment:
            ids = generated_ids(answers[0], f"member {member!r}, {STAGE}")
            text = tokenizer.decode(ids, skip_special_tokens=True)
            parsed = parse_score(text)
            return _judgment(request, parsed.score, parsed.failure, text)

        return _Plan([self._call(member, body)], finish)


# --------------------------------------------------------------------------------------------- logprob


def _digit_ids(tokens: ScoreTokens) -> tuple[list[int], list[int]]:
    """(tokens read as "0" after "1", every token starting with a digit) as id lists."""
    if tokens.zero_mask is None or tokens.digit_mask is None:
        return [], []
    return tokens.zero_mask.nonzero().flatten().tolist(), tokens.digit_mask.nonzero().flatten().tolist()


def expected_from_logprobs(
    tokens: ScoreTokens, first: dict[int, float], after_one: dict[int, float] | None
) -> tuple[float, None, str]:
    """The logprob judge's (score, failure, raw) from the score tokens' log-probabilities, as the HF judge writes it."""
    first_probs = {score: math.exp(first[token]) for score, token in tokens.first.items()}
    if tokens.split_ten:
        zero_ids, digit_ids = _digit_ids(tokens)
        after = after_one or {}
        dist = score_distribution(
            first_probs,
            ten_after_one=math.fsum(math.exp(after[i]) for i in zero_ids),
            end_after_one=max(0.0, 1.0 - math.fsum(math.exp(after[i]) for i in digit_ids)),
        )
    else:
        dist = score_distribution(first_probs)
    expectation = expected_score(dist)
    raw = json.dumps({"expected": round(expectation, 4), "p": [round(dist[s], 4) for s in SCORES]})
    return expectation, None, raw


class LogprobJudge(_ServerJudge):
    """Expected score from the next-token log-probabilities of the score tokens after ``{"score": ``."""

    hf_judge = "logprob"

    def plan(self, request: JudgeRequest) -> _Plan:
        member = request.judge
        tokens: ScoreTokens = self.oracle.tokens(member)
        ids = _encode(self.pool.tokenizer(member), self.oracle._judge_prompt(member, request) + tokens.prefix)
        read = {"max_tokens": 1, "temperature": 0.0, "logprobs": 1, "return_tokens_as_token_ids": True}
        first_ids = sorted(set(tokens.first.values()))
        calls = [self._call(member, {"prompt": ids, "logprob_token_ids": first_ids, **read})]
        _, digit_ids = _digit_ids(tokens)
        if tokens.split_ten:
            after_one = {"prompt": ids + [tokens.first[1]], "logprob_token_ids": digit_ids, **read}
            calls.append(self._call(member, after_one))
        what = f"member {member!r}, {STAGE}"

        def finish(answers: list[dict[str, Any]]) -> Judgment:
            first = _label_logprobs(answers[0], first_ids, what)
            after = _label_logprobs(answers[1], digit_ids, what) if tokens.split_ten else None
            return _judgment(request, *expected_from_logprobs(tokens, first, after))

        return _Plan(calls, finish)


# --------------------------------------------------------------------------------------------- likelihood


def _prompt_logprobs(answer: dict[str, Any], ids: Sequence[int], start: int, what: str) -> list[float]:
    """Log P(ids[t] | ids[:t]) for t >= start, from an ``echo`` answer's prompt log-probabilities."""
    try:
        rows = answer["choices"][0]["prompt_logprobs"]
        if len(rows) != len(ids):
            raise ValueError(f"{len(rows)} prompt positions for {len(ids)} tokens")
        return [float(rows[t][str(ids[t])]["logprob"]) for t in range(start, len(ids))]
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise RequestFailedError(f"{what}: no prompt log-probabilities in the answer ({err!r})") from None


class LikelihoodJudge(_ServerJudge):
    """The judge's length-normalised likelihood of the response after its own chat prompt for the instruction."""

    hf_judge = "likelihood"

    def plan(self, request: JudgeRequest) -> _Plan:
        if not request.response.text.strip():
            empty = _judgment(request, 1.0, None, json.dumps({"empty": True}))
            return _Plan([], lambda _: empty)
        member = request.judge
        targets, cut = self.oracle._targets(member, request.response.text)
        context = _encode(self.pool.tokenizer(member), self.pool.prompt_text(member, request.instruction.text))
        ids = context + targets
        body = {"prompt": ids, "echo": True, "max_tokens": 0, "logprobs": 0, "temperature": 0.0}
        what = f"member {member!r}, {STAGE}"

        def finish(answers: list[dict[str, Any]]) -> Judgment:
            logprobs = _prompt_logprobs(answers[0], ids, len(context), what)
            return self.oracle._judged(request, targets, logprobs, cut)

        return _Plan([self._call(member, body)], finish)


SERVER_JUDGES: Registry[type[_ServerJudge]] = Registry("judge type")
"""judge type -> the class that scores with it on vLLM; the same names as ``sparta.backends.base.JUDGES``."""

SERVER_JUDGES.register("generate")(GenerateJudge)
SERVER_JUDGES.register("logprob")(LogprobJudge)
SERVER_JUDGES.register("likelihood")(LikelihoodJudge)
