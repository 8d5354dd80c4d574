"""Answering on vLLM: one completion request per (member, instruction), on token ids we encode ourselves.

The prompt ids, the end-of-sequence ids, the long-prompt policy and the way generated ids become a
:class:`Response` (text, ``finish``, token counts) are the HF engine's own (``sparta.backends.hf.generation``), so
both engines see the same tokens and write the same records. Sampling is the member's: temperature 0 is greedy,
top-k is off, and repetition penalties are neutral whatever the model's generation_config.json says (as in HF).

Each request's seed comes from the stage seed, the member and the instruction id, so an answer does not depend on
batching, sharding or what ran before it: a resumed run on the same server regenerates identical answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparta.backends.base import Progress, _no_progress
from sparta.backends.hf.generation import Prompt, encode_requests, eos_ids, response_from_ids
from sparta.backends.hf.pool import ModelPool
from sparta.backends.vllm.adapters import AdapterSet
from sparta.backends.vllm.client import Call, VllmClient
from sparta.backends.vllm.errors import RequestFailedError
from sparta.records import Instruction, Response
from sparta.seeding import derive_seed

STAGE = "answering"

NEUTRAL_SAMPLING = {"top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0, "presence_penalty": 0.0}
"""Explicit so that a model's generation_config.json defaults, which vLLM applies to requests, change nothing."""


def request_seed(seed: int, member: str, instruction_id: str) -> int:
    """The request's own seed (63 bits, within vLLM's int64 range)."""
    return derive_seed(seed, "generate", member, instruction_id)


def _body(pool: ModelPool, adapters: AdapterSet, prompt: Prompt, seed: int) -> dict[str, Any]:
    sampling = pool.sampling(prompt.member)
    return {
        "model": adapters.name(prompt.member),
        "prompt": list(prompt.ids),
        "max_tokens": sampling.max_new_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
        **NEUTRAL_SAMPLING,
        "seed": request_seed(seed, prompt.member, prompt.instruction.id),
        "stop_token_ids": eos_ids(pool, prompt.member),
        "return_token_ids": True,
    }


def generated_ids(answer: dict[str, Any], what: str) -> list[int]:
    """The generated token ids of a completion answer (the stop token included when one ended it)."""
    choice = answer["choices"][0]
    ids = choice.get("token_ids")
    if ids is None:
        raise RequestFailedError(f"{what}: the server returned no token_ids; vLLM >= 0.10 is needed")
    ids = list(ids)
    stop = choice.get("stop_reason")
    if choice.get("finish_reason") == "stop" and isinstance(stop, int) and (not ids or ids[-1] != stop):
        ids.append(stop)
    return ids


def generate(
    pool: ModelPool,
    client: VllmClient,
    adapters: AdapterSet,
    requests: Sequence[tuple[str, Instruction]],
    seed: int,
    progress: Progress = _no_progress,
) -> list[Response]:
    """Answer every (member, instruction) request; the output order follows the input order."""
    responses, runnable = encode_requests(pool, requests, progress)
    calls = [Call("/v1/completions", _body(pool, adapters, p, seed), p.member, STAGE) for p in runnable]
    for prompt, answer in zip(runnable, client.run(calls, lambda _: progress(1)), strict=True):
        what = f"member {prompt.member!r}, {STAGE}"
        eos = set(eos_ids(pool, prompt.member))
        responses[prompt.index] = response_from_ids(
            prompt, generated_ids(answer, what), eos, pool.tokenizer(prompt.member)
        )
    return [r for r in responses if r is not None]
