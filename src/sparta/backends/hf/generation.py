"""Batched generation over the pool: grouped by member (one adapter switch per group), left-padded, seeded.

Why this shape:
- requests of one member share an adapter, so each group is one ``set_adapter`` and the batches within it are
  sorted by prompt length to keep padding small;
- every batch draws from its own RNG seeded by (seed, member, the instruction ids in the batch), so the text a
  request gets does not depend on what ran before it: a resumed run regenerates identical responses;
- a prompt is never truncated: one over ``pool.max_prompt_tokens`` either raises (``pool.long_prompt: error``)
  or yields an empty response marked ``meta["skipped"] = "prompt too long"`` (``skip``), which the pipeline drops.

``Response.meta`` holds ``prompt_tokens``, ``new_tokens`` (up to and including the end-of-sequence token) and
``finish``: ``"eos"`` when the model stopped by itself, ``"length"`` when ``max_new_tokens`` cut it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import GenerationConfig

from sparta.backends.base import Progress, _no_progress
from sparta.backends.hf.pool import ModelPool
from sparta.config import SamplingConfig
from sparta.errors import SpartaError
from sparta.records import CUT_BY_LENGTH, Instruction, Response
from sparta.seeding import derive_seed

SKIPPED = "prompt too long"


class PromptTooLongError(SpartaError, ValueError):
    """A prompt exceeds ``pool.max_prompt_tokens`` and the pool is configured not to skip it."""


@dataclass(frozen=True)
class _Prompt:
    index: int
    member: str
    instruction: Instruction
    ids: list[int]


def _encode(pool: ModelPool, requests: Sequence[tuple[str, Instruction]]) -> list[_Prompt]:
    prompts = []
    for index, (member, instruction) in enumerate(requests):
        text = pool.prompt_text(member, instruction.text)
        ids = pool.tokenizer(member)(text, add_special_tokens=False)["input_ids"]  # the template has its specials
        prompts.append(_Prompt(index, member, instruction, ids))
    return prompts


def _too_long(pool: ModelPool, prompt: _Prompt) -> Response:
    limit = pool.config.max_prompt_tokens
    if pool.config.long_prompt == "error":
        raise PromptTooLongError(
            f"instruction {prompt.instruction.id!r} for member {prompt.member!r} is {len(prompt.ids)} tokens "
            f"in its chat template, over pool.max_prompt_tokens={limit}; raise the limit or set "
            f"pool.long_prompt=skip to drop such instructions"
        )
    meta = {"skipped": SKIPPED, "prompt_tokens": len(prompt.ids), "new_tokens": 0, "finish": "skipped"}
    return Response(prompt.instruction.id, prompt.member, "", meta)


def _batches(prompts: list[_Prompt], members: list[str], batch_size: int) -> list[list[_Prompt]]:
    """Group by member in pool order, sort each group by length (then id), cut into batches."""
    batches = []
    for member in members:
        group = sorted(
            (p for p in prompts if p.member == member), key=lambda p: (len(p.ids), p.instruction.id, p.index)
        )
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return batches


def _eos_ids(pool: ModelPool, member: str) -> list[int]:
    configured = pool.model(member).generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if pool.tokenizer(member).eos_token_id is not None:
        ids.add(pool.tokenizer(member).eos_token_id)
    if not ids:
        raise ValueError(f"member {member!r}: its tokenizer and generation config name no end-of-sequence token")
    return sorted(ids)


def _generation_config(sampling: SamplingConfig, eos: list[int], pad: int) -> GenerationConfig:
    """Exactly the member's sampling settings; temperature 0 means greedy decoding."""
    common = {"max_new_tokens": sampling.max_new_tokens, "eos_token_id": eos, "pad_token_id": pad}
    if sampling.temperature == 0:
        return GenerationConfig(do_sample=False, **common)
    return GenerationConfig(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0, **common)


def _left_pad(batch: list[_Prompt], pad: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(p.ids) for p in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, prompt in enumerate(batch):
        ids[row, width - len(prompt.ids) :] = torch.tensor(prompt.ids)
        mask[row, width - len(prompt.ids) :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def _run_batch(pool: ModelPool, batch: list[_Prompt], seed: int) -> list[Response]:
    member = batch[0].member
    model, tokenizer = pool.model(member), pool.tokenizer(member)
    eos = _eos_ids(pool, member)
    config = _generation_config(pool.sampling(member), eos, tokenizer.pad_token_id)
    device = next(model.parameters()).device  # where the weights are, never the configured string
    inputs = _left_pad(batch, tokenizer.pad_token_id, device)
    batch_seed = derive_seed(seed, "generate", member, *(p.instruction.id for p in batch))
    model.eval()
    with torch.random.fork_rng(devices=_rng_devices(device)), torch.inference_mode():
        torch.manual_seed(batch_seed)
        output = model.generate(**inputs, generation_config=config)
    new = output[:, inputs["input_ids"].shape[1] :].tolist()
    return [_response(prompt, tokens, set(eos), tokenizer) for prompt, tokens in zip(batch, new)]


def _response(prompt: _Prompt, tokens: list[int], eos: set[int], tokenizer) -> Response:
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
    responses: list[Response | None] = [None] * len(requests)
    runnable = []
    for prompt in _encode(pool, requests):
        if len(prompt.ids) > pool.config.max_prompt_tokens:
            responses[prompt.index] = _too_long(pool, prompt)
            progress(1)
        else:
            runnable.append(prompt)
    for batch in _batches(runnable, pool.members, batch_size):
        for prompt, response in zip(batch, _run_batch(pool, batch, seed)):
            responses[prompt.index] = response
        progress(len(batch))
    return [r for r in responses if r is not None]
