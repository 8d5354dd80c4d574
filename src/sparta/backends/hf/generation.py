"""Batched generation over the pool: every member's requests in one batch, each row with its own adapter and seed.

Why this shape:
- members on one base differ only by their LoRA adapters, so their requests share batches (PEFT applies each
  row's adapter to that row); rows are ordered by prompt length to keep padding small and cut into
  ``pool.generation_batch_size`` rows, so a chunk of a few requests per member still fills a batch;
- every row samples with its own member's settings (temperature, top-p, max new tokens) from its own random
  stream, seeded by (the stage's seed, member, instruction id) only (``request_seed``): the text a request gets
  depends neither on what ran before it nor on which requests share its batch, beyond the floating-point effect
  of padding on the logits (measured in benchmarks/README.md). A resumed or resharded run regenerates the same
  responses;
- a prompt is never truncated: one over ``pool.max_prompt_tokens`` either raises (``pool.long_prompt: error``)
  or yields an empty response marked ``meta["skipped"] = "prompt too long"`` (``skip``), which the pipeline drops.

``Response.meta`` holds ``prompt_tokens``, ``new_tokens`` (up to and including the end-of-sequence token) and
``finish``: ``"eos"`` when the model stopped by itself, ``"length"`` when ``max_new_tokens`` cut it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sparta.backends.base import Progress, _no_progress
from sparta.backends.hf.decoding import DecodeRow, decode
from sparta.backends.hf.pool import ModelPool
from sparta.errors import SpartaError
from sparta.records import CUT_BY_LENGTH, Instruction, Response
from sparta.seeding import derive_seed

SKIPPED = "prompt too long"


class PromptTooLongError(SpartaError, ValueError):
    """A prompt exceeds ``pool.max_prompt_tokens`` and the pool is configured not to skip it."""


@dataclass(frozen=True)
class Prompt:
    index: int
    member: str
    instruction: Instruction
    ids: list[int]


def _encode(pool: ModelPool, requests: Sequence[tuple[str, Instruction]]) -> list[Prompt]:
    prompts = []
    for index, (member, instruction) in enumerate(requests):
        text = pool.prompt_text(member, instruction.text)
        ids = pool.tokenizer(member)(text, add_special_tokens=False)["input_ids"]  # the template has its specials
        prompts.append(Prompt(index, member, instruction, ids))
    return prompts


def encode_requests(
    pool: ModelPool, requests: Sequence[tuple[str, Instruction]], progress: Progress = _no_progress
) -> tuple[list[Response | None], list[Prompt]]:
    """Every request's prompt ids, as either engine feeds them: a slot per request, already filled (and counted as
    progress) for a prompt over ``pool.max_prompt_tokens`` under ``long_prompt: skip``, and the prompts to answer."""
    responses: list[Response | None] = [None] * len(requests)
    runnable = []
    for prompt in _encode(pool, requests):
        if len(prompt.ids) > pool.config.max_prompt_tokens:
            responses[prompt.index] = _too_long(pool, prompt)
            progress(1)
        else:
            runnable.append(prompt)
    return responses, runnable


def _too_long(pool: ModelPool, prompt: Prompt) -> Response:
    limit = pool.config.max_prompt_tokens
    if pool.config.long_prompt == "error":
        raise PromptTooLongError(
            f"instruction {prompt.instruction.id!r} for member {prompt.member!r} is {len(prompt.ids)} tokens "
            f"in its chat template, over pool.max_prompt_tokens={limit}; raise the limit or set "
            f"pool.long_prompt=skip to drop such instructions"
        )
    meta = {"skipped": SKIPPED, "prompt_tokens": len(prompt.ids), "new_tokens": 0, "finish": "skipped"}
    return Response(prompt.instruction.id, prompt.member, "", meta)


def _batches(prompts: list[Prompt], pool: ModelPool, batch_size: int) -> list[list[Prompt]]:
    """Members of one base share batches of similar prompt lengths; within a batch, rows are grouped by member
    (each member's adapter then applies to one slice of rows)."""
    base_of = {member: index for index, (_, _, members) in enumerate(pool.bases()) for member in members}
    ordered = sorted(prompts, key=lambda p: (base_of[p.member], len(p.ids), p.instruction.id, p.member, p.index))
    batches: list[list[Prompt]] = []
    for prompt in ordered:
        if batches and len(batches[-1]) < batch_size and base_of[batches[-1][0].member] == base_of[prompt.member]:
            batches[-1].append(prompt)
        else:
            batches.append([prompt])
    member_order = {member: k for k, member in enumerate(base_of)}
    return [sorted(batch, key=lambda p: member_order[p.member]) for batch in batches]


def _shared_model(pool: ModelPool, member: str):
    """The PeftModel holding ``member``'s adapter, without switching its active adapter."""
    return next(model for _, model, members in pool.bases() if member in members)


def eos_ids(pool: ModelPool, member: str) -> list[int]:
    configured = _shared_model(pool, member).generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if pool.tokenizer(member).eos_token_id is not None:
        ids.add(pool.tokenizer(member).eos_token_id)
    if not ids:
        raise ValueError(f"member {member!r}: its tokenizer and generation config name no end-of-sequence token")
    return sorted(ids)


def request_seed(seed: int, member: str, instruction_id: str) -> int:
    """The seed of one answer: the stage's seed, the member and the instruction, nothing about its batch."""
    return derive_seed(seed, "generate", member, instruction_id)


def _row(pool: ModelPool, prompt: Prompt, seed: int) -> DecodeRow:
    sampling = pool.sampling(prompt.member)
    return DecodeRow(
        prompt_ids=prompt.ids,
        adapter=prompt.member,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_new_tokens=sampling.max_new_tokens,
        stop_ids=frozenset(eos_ids(pool, prompt.member)),
        seed=request_seed(seed, prompt.member, prompt.instruction.id),
    )


def _run_batch(pool: ModelPool, batch: list[Prompt], seed: int) -> list[Response]:
    model = _shared_model(pool, batch[0].member)
    tokenizer = pool.tokenizer(batch[0].member)
    rows = [_row(pool, prompt, seed) for prompt in batch]
    model.eval()
    with torch.inference_mode():
        new = decode(model, rows, tokenizer.pad_token_id)
    return [response_from_ids(prompt, tokens, row.stop_ids, tokenizer) for prompt, tokens, row in zip(batch, new, rows)]


def response_from_ids(prompt: Prompt, tokens: list[int], eos: set[int] | frozenset[int], tokenizer) -> Response:
    stop = next((i for i, t in enumerate(tokens) if t in eos), None)
    answer = tokens if stop is None else tokens[:stop]  # the end-of-sequence token is counted, not shown
    new_tokens = len(tokens) if stop is None else stop + 1
    finish = CUT_BY_LENGTH if stop is None else "eos"
    meta = {"new_tokens": new_tokens, "prompt_tokens": len(prompt.ids), "finish": finish}
    text = tokenizer.decode(answer, skip_special_tokens=True).strip()
    return Response(prompt.instruction.id, prompt.member, text, meta)


def generate(
    pool: ModelPool,
    requests: Sequence[tuple[str, Instruction]],
    seed: int,
    batch_size: int | None = None,
    progress: Progress = _no_progress,
) -> list[Response]:
    """Answer every (member, instruction) request; the output order follows the input order."""
    batch_size = batch_size or pool.config.generation_batch_size
    responses, runnable = encode_requests(pool, requests, progress)
    for batch in _batches(runnable, pool, batch_size):
        for prompt, response in zip(batch, _run_batch(pool, batch, seed)):
            responses[prompt.index] = response
        progress(len(batch))
    return [r for r in responses if r is not None]
