"""The three judges on vLLM's completions API, scoring exactly the token ids the HF engine scores.

What to feed and what to read comes from ``sparta.backends.judging`` (the layer both engines share: prompt ids,
score tokens, the likelihood judge's context and targets, raw numbers to judgments); only the forward passes
move to the server:

- ``generate``   greedy completion of the judge prompt's ids, stopped at the judge's stop ids; parsed as on HF;
- ``logprob``    a one-token completion of the ids pre-filled up to the score, with ``logprob_token_ids`` = the
                 score tokens (full-vocabulary log-probabilities of just those ids). When "10" is "1" + "0", a
                 second request on the ids + "1" reads the digit tokens, for P("0" | "1") and P(no digit | "1");
- ``likelihood`` ``echo`` with ``max_tokens: 0`` on context + target ids: the prompt log-probabilities of the
                 targets.

Every request of a call is sent at once (the server batches them); judgments come back in request order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sparta.backends.base import Progress, _no_progress
from sparta.backends.hf.pool import ModelPool
from sparta.backends.judging import (
    PREFIX_VARIANTS,
    JudgeEncoder,
    ScoreTokens,
    blank_judgment,
    generate_inputs,
    generate_judgment,
    likelihood_inputs,
    likelihood_judgment,
    logprob_inputs,
    logprob_judgment,
    member_score_tokens,
    reading_from_probabilities,
)
from sparta.backends.vllm.adapters import AdapterSet
from sparta.backends.vllm.client import Call, VllmClient
from sparta.backends.vllm.errors import RequestFailedError
from sparta.backends.vllm.generation import NEUTRAL_SAMPLING, generated_ids
from sparta.config import JudgeConfig
from sparta.records import JudgeRequest, Judgment
from sparta.registry import Registry

STAGE = "judging"
_COMPLETIONS = "/v1/completions"
_READ_ONE = {"max_tokens": 1, "temperature": 0.0, "logprobs": 1, "return_tokens_as_token_ids": True}


@dataclass
class _Plan:
    """The calls one judge request needs (none for a blank response) and how their answers become a judgment."""

    calls: list[Call]
    finish: Callable[[list[dict[str, Any]]], Judgment]


class _ServerJudge:
    """Sends every request's calls at once and assembles the judgments in request order."""

    def __init__(self, pool: ModelPool, config: JudgeConfig, client: VllmClient, adapters: AdapterSet) -> None:
        self.pool = pool
        self.config = config
        self.client = client
        self.adapters = adapters
        self._encoders: dict[str, JudgeEncoder] = {}

    def encoder(self, member: str) -> JudgeEncoder:
        if member not in self._encoders:
            self._encoders[member] = JudgeEncoder(
                self.pool.member_config(member), self.pool.tokenizer(member), self.config
            )
        return self._encoders[member]

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


def _label_probabilities(answer: dict[str, Any], ids: Sequence[int], what: str) -> dict[int, float]:
    """The probabilities of ``ids`` at the one generated position (``logprob_token_ids``)."""
    try:
        read = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        by_id = {int(key.rsplit(":", 1)[1]): float(value) for key, value in read.items()}
        return {i: math.exp(by_id[i]) for i in ids}
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise RequestFailedError(f"{what}: no log-probabilities for the score tokens in the answer ({err!r})") from None


# --------------------------------------------------------------------------------------------- generate


class GenerateJudge(_ServerJudge):
    """The judge writes its verdict greedily; the shared layer parses it."""

    def plan(self, request: JudgeRequest) -> _Plan:
        member = request.judge
        inputs = generate_inputs(self.encoder(member), request)
        body = {
            "prompt": inputs.prompt_ids,
            "max_tokens": inputs.max_new_tokens,
            "temperature": 0.0,
            **NEUTRAL_SAMPLING,
            "stop_token_ids": list(inputs.stop_ids),
            "return_token_ids": True,
        }

        def finish(answers: list[dict[str, Any]]) -> Judgment:
            ids = generated_ids(answers[0], f"member {member!r}, {STAGE}")
            return generate_judgment(request, self.pool.tokenizer(member).decode(ids, skip_special_tokens=True))

        return _Plan([self._call(member, body)], finish)


# --------------------------------------------------------------------------------------------- logprob


class LogprobJudge(_ServerJudge):
    """Expected score from the log-probabilities of the score tokens after the pre-filled ``{"score": ``."""

    def __init__(
        self,
        pool: ModelPool,
        config: JudgeConfig,
        client: VllmClient,
        adapters: AdapterSet,
        variants: Sequence[tuple[str, str]] = PREFIX_VARIANTS,
    ) -> None:
        super().__init__(pool, config, client, adapters)
        self.variants = tuple(variants)
        self._tokens: dict[str, ScoreTokens] = {}

    def tokens(self, member: str) -> ScoreTokens:
        """The member's score tokens, found once (as the HF judge finds them)."""
        if member not in self._tokens:
            self._tokens[member] = member_score_tokens(self.encoder(member), self.variants)
        return self._tokens[member]

    def plan(self, request: JudgeRequest) -> _Plan:
        member = request.judge
        tokens = self.tokens(member)
        inputs = logprob_inputs(self.encoder(member), tokens, request)
        first_ids = sorted(set(tokens.first.values()))
        calls = [self._call(member, {"prompt": inputs.prompt_ids, "logprob_token_ids": first_ids, **_READ_ONE})]
        if inputs.after_one_ids is not None:
            after = {"prompt": inputs.after_one_ids, "logprob_token_ids": list(tokens.digit_ids), **_READ_ONE}
            calls.append(self._call(member, after))
        what = f"member {member!r}, {STAGE}"

        def finish(answers: list[dict[str, Any]]) -> Judgment:
            first = _label_probabilities(answers[0], first_ids, what)
            after_one = _label_probabilities(answers[1], tokens.digit_ids, what) if len(answers) > 1 else None
            return logprob_judgment(request, reading_from_probabilities(tokens, first, after_one))

        return _Plan(calls, finish)


# --------------------------------------------------------------------------------------------- likelihood


def _prompt_logprobs(answer: dict[str, Any], ids: Sequence[int], start: int, what: str) -> list[float]:
    """The values log P(ids[t] | ids[:t]) for t >= start, from an ``echo`` answer's prompt log-probs."""
    try:
        rows = answer["choices"][0]["prompt_logprobs"]
        if len(rows) != len(ids):
            raise ValueError(f"{len(rows)} prompt positions for {len(ids)} tokens")
        return [float(rows[t][str(ids[t])]["logprob"]) for t in range(start, len(ids))]
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise RequestFailedError(f"{what}: no prompt log-probabilities in the answer ({err!r})") from None


class LikelihoodJudge(_ServerJudge):
    """The judge's length-normalised likelihood of the response after its own chat prompt for the instruction."""

    def plan(self, request: JudgeRequest) -> _Plan:
        member = request.judge
        inputs = likelihood_inputs(self.encoder(member), request)
        if inputs is None:
            blank = blank_judgment(request)
            return _Plan([], lambda _: blank)
        ids = inputs.context_ids + inputs.target_ids
        body = {"prompt": ids, "echo": True, "max_tokens": 0, "logprobs": 0, "temperature": 0.0}
        what = f"member {member!r}, {STAGE}"

        def finish(answers: list[dict[str, Any]]) -> Judgment:
            logprobs = _prompt_logprobs(answers[0], ids, len(inputs.context_ids), what)
            return likelihood_judgment(request, inputs, logprobs, self.config)

        return _Plan([self._call(member, body)], finish)


SERVER_JUDGES: Registry[type[_ServerJudge]] = Registry("judge type")
"""judge type -> the class that scores with it on vLLM; the same names as ``sparta.backends.base.JUDGES``."""

SERVER_JUDGES.register("generate")(GenerateJudge)
SERVER_JUDGES.register("logprob")(LogprobJudge)
SERVER_JUDGES.register("likelihood")(LikelihoodJudge)
