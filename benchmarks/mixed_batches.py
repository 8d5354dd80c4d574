"""Answering and judging of a pool, the per-member path (baseline.py) against today's, on the same requests.

Both paths run in this process with the same threads, so the ratio is the batching alone; the demo-round
children (demo_round.py) add the thread settings. Answers are forced to a fixed length on both paths (the
end-of-sequence token is suppressed), so both do the same work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

import sparta.backends.hf.generation as generation
from baseline import OldLikelihoodJudge, OldLogprobJudge, old_generate
from sparta.backends.base import JUDGES
from sparta.backends.hf.pool import ModelPool
from sparta.config import JudgeConfig, LoraConfig, MemberConfig, PoolConfig, SamplingConfig
from sparta.pipeline.loop import _chunk_size
from sparta.records import Instruction, JudgeRequest, Response

SAMPLING = ((0.5, 0.9), (0.7, 0.9), (0.3, 0.9), (1.0, 0.95))
"""(temperature, top_p) of the demo's four members, reused in turn."""
OLD_JUDGES = {"likelihood": OldLikelihoodJudge, "logprob": OldLogprobJudge}


def member_pool(model: str, members: int, max_new_tokens: int) -> ModelPool:
    """``members`` members on one base, each with its own sampling and an adapter moved off zero (as trained)."""
    configs = [
        MemberConfig(
            name=f"m{k}",
            model=model,
            sampling=SamplingConfig(
                temperature=SAMPLING[k % 4][0], top_p=SAMPLING[k % 4][1], max_new_tokens=max_new_tokens
            ),
        )
        for k in range(members)
    ]
    pool = ModelPool(PoolConfig(members=configs), LoraConfig(), seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in pool.bases()[0][1].named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.01)
    return pool


@contextmanager
def forced_length(pool: ModelPool, tokens: int) -> Iterator[None]:
    """Every answer exactly ``tokens`` long on both paths: no end-of-sequence token can stop it."""
    config = pool.bases()[0][1].get_base_model().generation_config
    original = generation.eos_ids
    config.min_new_tokens = tokens  # the baseline's transformers generate reads it
    generation.eos_ids = lambda pool, member: [-1]  # today's decoding stops at these ids only
    try:
        yield
    finally:
        config.min_new_tokens = None
        generation.eos_ids = original


def _timed(call, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = call(*args, **kwargs)
    return result, time.perf_counter() - start


def answering(pool: ModelPool, requests: Sequence[tuple[str, Instruction]], old_batch: int, new_batch: int) -> dict:
    """tok/s of both paths, and how many answers stay identical when the batches are composed differently."""
    tokens = pool.sampling(requests[0][0]).max_new_tokens
    with forced_length(pool, tokens):
        old_generate(pool, requests[:2], seed=1, batch_size=2)  # warm-up
        generation.generate(pool, requests[:2], seed=1, batch_size=2)
        old, old_seconds = _timed(old_generate, pool, requests, 7, old_batch)
        new, new_seconds = _timed(generation.generate, pool, requests, 7, new_batch)
        by_member = sorted(range(len(requests)), key=lambda i: (requests[i][0], -i))  # members apart, reversed
        alone = generation.generate(pool, [requests[i] for i in by_member], 7, new_batch // 2)
    recomposed = {by_member[k]: response.text for k, response in enumerate(alone)}
    identical = sum(recomposed[i] == response.text for i, response in enumerate(new))
    count = sum(r.meta["new_tokens"] for r in new)
    return {
        "requests": len(requests),
        "max_new_tokens": tokens,
        "fixed_length": all(r.meta["new_tokens"] == tokens for r in [*old, *new]),
        "old": {"batch": old_batch, "seconds": old_seconds, "tokens_per_s": count / old_seconds},
        "new": {"batch": new_batch, "seconds": new_seconds, "tokens_per_s": count / new_seconds},
        "speedup": old_seconds / new_seconds,
        "identical_when_recomposed": identical / len(new),
        "responses": new,
    }


def match_requests(instructions: Sequence[Instruction], responses: Sequence[Response]) -> list[JudgeRequest]:
    """One match per instruction (members k and k+1 in turn); every other member judges both answers."""
    answers = {(r.instruction_id, r.model): r for r in responses}
    members = sorted({r.model for r in responses})
    requests = []
    for k, instruction in enumerate(instructions):
        pair = (members[k % len(members)], members[(k + 1) % len(members)])
        for judge in (m for m in members if m not in pair):
            requests += [JudgeRequest(judge, instruction, answers[(instruction.id, side)]) for side in pair]
    return requests


def chunks(requests: Sequence[JudgeRequest], batch: int) -> list[Sequence[JudgeRequest]]:
    """The round loop's chunks of a stage (loop._chunk_size): each is one call of the judge."""
    size = _chunk_size(len(requests), batch)
    return [requests[i : i + size] for i in range(0, len(requests), size)]


def _judge_run(judge, parts: Sequence[Sequence[JudgeRequest]]) -> tuple[list, float]:
    judge.score(parts[0][:2])  # warm-up: score tokens, turn ends, first allocations
    judge.row_tokens = judge.spared_tokens = 0
    start = time.perf_counter()
    judged = [j for part in parts for j in judge.score(part)]
    return judged, time.perf_counter() - start


def _judges(pool: ModelPool, judge_type: str, old_batch: int, new_batch: int) -> dict:
    old = OLD_JUDGES[judge_type]
    config = JudgeConfig(type=judge_type, batch_size=new_batch)
    unshared = JUDGES.get(judge_type)(pool, config)
    unshared.min_shared_fraction = float("inf")  # no prefix shared within a batch
    unshared.contexts = None  # and no judge's header kept across batches
    unshared.packing = False  # rows padded, as before packing
    return {
        "old_whole": old(pool, JudgeConfig(type=judge_type, batch_size=old_batch)),
        "old": old(pool, JudgeConfig(type=judge_type, batch_size=old_batch)),
        "unshared": unshared,
        "new": JUDGES.get(judge_type)(pool, config),
    }


def judging(
    pool: ModelPool, requests: Sequence[JudgeRequest], judge_type: str, old_batch: int, new_batch: int, reps: int
) -> dict:
    """judgments/s of the per-member judge (in the round loop's chunks, and given every request at once), today's
    without shared prefixes or cached headers, and today's (both in chunks); best of ``reps`` interleaved runs;
    score differences."""
    judges = _judges(pool, judge_type, old_batch, new_batch)
    parts = {
        "old_whole": [requests],
        "old": chunks(requests, old_batch),
        "unshared": chunks(requests, new_batch),
        "new": chunks(requests, new_batch),
    }
    seconds = {name: float("inf") for name in judges}
    judged: dict[str, list] = {}
    for _ in range(reps):
        for name, judge in judges.items():
            judged[name], took = _judge_run(judge, parts[name])
            seconds[name] = min(seconds[name], took)
    n = len(requests)

    def gap(a: str, b: str) -> float:
        return max(abs(x.score - y.score) for x, y in zip(judged[a], judged[b]))

    batches = {"old_whole": old_batch, "old": old_batch, "unshared": new_batch, "new": new_batch}
    result = {
        name: {"batch": batches[name], "chunks": len(parts[name]), "seconds": s, "judgments_per_s": n / s}
        for name, s in seconds.items()
    }
    return {
        "judgments": n,
        **result,
        "speedup": seconds["old"] / seconds["new"],
        "speedup_vs_whole": seconds["old_whole"] / seconds["new"],
        "prefix_speedup": seconds["unshared"] / seconds["new"],
        "spared_token_share": judges["new"].spared_tokens / judges["new"].row_tokens,
        "max_score_gap": gap("old_whole", "new"),
        "max_score_gap_unshared": gap("old_whole", "unshared"),
    }
