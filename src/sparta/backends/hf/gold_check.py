"""``judge-check --gold``: every judge type on pairs of the pool's own answers to gold-scored items.

1. ``gold_items``: a seeded choice of items that have a gold answer.
2. ``sample_answers``: every sampling variant (``sparta.judge_validity.variants``) answers every item ``samples``
   times through the pool's normal generation, one derived seed per repetition; each answer is checked against the
   gold answer (``sparta.tasks.score_answer``).
3. ``build_pairs`` (pure): decided pairs and temperature / length control pairs.
4. ``judge_pairs``: each judge type scores both sides of every pair with the pool members who wrote neither side
   (as in a match); each (judge, answer) is scored once, however many pairs share it.
5. ``summarise_kind`` (pure): accuracy on decided pairs, bias rates on the controls, with intervals.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sparta.backends.base import JUDGES, Progress
from sparta.backends.hf.generation import generate
from sparta.config import JudgeConfig
from sparta.judge_validity import KINDS, GoldPair, PairVerdict, Sample, SamplingVariant, build_pairs, summarise_kind
from sparta.judge_validity.pairs import judges_of
from sparta.pipeline.progress import Reporter, SilentReporter
from sparta.records import Instruction, JudgeRequest, Response
from sparta.seeding import derive_seed
from sparta.tasks import score_answer

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool


def gold_items(items: Sequence[Instruction], n: int, seed: int) -> list[Instruction]:
    """``n`` items with a gold answer, chosen by a seeded hash of their ids (stable as the set grows)."""
    gold = [x for x in items if x.answer is not None and x.answer_type is not None]
    rank = {x.id: derive_seed(seed, "gold-check", "items", x.id) for x in gold}
    return sorted(gold, key=lambda x: (rank[x.id], x.id))[:n]


def sample_answers(
    pool: ModelPool,
    items: Sequence[Instruction],
    variants: Sequence[SamplingVariant],
    samples: int,
    seed: int,
    progress: Progress,
) -> list[Sample]:
    """``samples`` answers of every variant to every item, each checked against the gold answer."""
    requests = [(variant, item) for variant in variants for item in items]
    found = []
    for index in range(samples):
        batch_seed = derive_seed(seed, "gold-check", "answers", index)
        responses = generate(pool, [(v.source, item) for v, item in requests], batch_seed, None, progress)
        for (variant, item), response in zip(requests, responses, strict=True):
            if response.meta.get("skipped"):
                continue
            found.append(
                Sample(
                    id=f"{item.id}/{variant.source}/{index}",
                    item_id=item.id,
                    member=variant.member,
                    source=variant.source,
                    temperature=variant.temperature,
                    index=index,
                    text=response.text,
                    tokens=int(response.meta.get("new_tokens", 0)),
                    correct=score_answer(item.answer_type or "", response.text, item.answer) == 1.0,
                    truncated=response.meta.get("finish") == "length",
                )
            )
    return found


def _requests(
    pairs: Sequence[GoldPair], items: dict[str, Instruction], members: Sequence[str]
) -> tuple[list[JudgeRequest], list[tuple[str, str]]]:
    """One request per distinct (judge, answer) of the pairs, and its key."""
    keys: dict[tuple[str, str], JudgeRequest] = {}
    for pair in pairs:
        for judge in judges_of(pair, members):
            for sample in (pair.first, pair.second):
                if (judge, sample.id) not in keys:
                    response = Response(sample.item_id, sample.source, sample.text)
                    keys[(judge, sample.id)] = JudgeRequest(judge, items[sample.item_id], response)
    return list(keys.values()), list(keys)


def judge_pairs(
    pool: ModelPool,
    judge_config: JudgeConfig,
    pairs: Sequence[GoldPair],
    items: dict[str, Instruction],
    members: Sequence[str],
    progress: Progress,
) -> list[PairVerdict]:
    """Both sides of every pair scored by its judges with ``judge_config.type``."""
    requests, keys = _requests(pairs, items, members)
    judgments = JUDGES.get(judge_config.type)(pool, judge_config).score(requests, progress)
    score = {key: judgment.score for key, judgment in zip(keys, judgments, strict=True)}
    return [
        PairVerdict(
            pair=pair,
            scores={j: (score[(j, pair.first.id)], score[(j, pair.second.id)]) for j in judges_of(pair, members)},
        )
        for pair in pairs
    ]


@dataclass
class GoldCheck:
    """Everything one gold check produced: the answers, the pairs, each type's verdicts and its summary row."""

    samples: list[Sample]
    pairs: list[GoldPair]
    verdicts: dict[str, list[PairVerdict]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary rows, every answer and every pair with each judge type's scores of its two sides."""
        pairs = []
        for index, pair in enumerate(self.pairs):
            scores = {t: dict(verdicts[index].scores) for t, verdicts in self.verdicts.items()}
            pairs.append(
                {
                    "kind": pair.kind,
                    "item_id": pair.item_id,
                    "first": pair.first.id,
                    "second": pair.second.id,
                    "same_source": pair.same_source,
                    "scores": scores,
                }
            )
        return {"rows": self.rows, "samples": [asdict(s) for s in self.samples], "pairs": pairs}


def summary_row(judge_type: str, verdicts: Sequence[PairVerdict], seconds: float, seed: int) -> dict[str, Any]:
    """One table row: per kind the rate and panel rate with intervals and the pairs behind them."""
    row: dict[str, Any] = {"judge_type": judge_type}
    for kind in KINDS:
        row[kind] = summarise_kind([v for v in verdicts if v.pair.kind == kind], seed)
    judgments = len({(j, s.id) for v in verdicts for j in v.scores for s in (v.pair.first, v.pair.second)})
    row["seconds"] = seconds
    row["judgments_per_s"] = judgments / seconds if seconds > 0 else float("inf")
    return row


def gold_check(
    pool: ModelPool,
    members: Sequence[str],
    variants: Sequence[SamplingVariant],
    items: Sequence[Instruction],
    judge_types: Sequence[str],
    judge_config: JudgeConfig,
    *,
    samples: int = 4,
    seed: int = 0,
    max_pairs: int | None = None,
    min_length_ratio: float = 1.5,
    reporter: Reporter | None = None,
) -> GoldCheck:
    """Sample, pair and judge: one summary row per judge type (``members`` judge, ``variants`` answer)."""
    reporter = reporter or SilentReporter()
    across = len({v.member for v in variants}) == len(variants)  # one temperature per member: compare members
    with reporter.stage("gold check: answering", samples * len(variants) * len(items)) as advance:
        found = sample_answers(pool, items, variants, samples, seed, advance)
    pairs = build_pairs(found, min_length_ratio=min_length_ratio, max_pairs=max_pairs, seed=seed, across_members=across)
    result = GoldCheck(found, pairs)
    by_id = {x.id: x for x in items}
    requests = len(_requests(pairs, by_id, members)[0])
    for judge_type in judge_types:
        config = judge_config.model_copy(update={"type": judge_type})
        start = time.perf_counter()
        with reporter.stage(f"gold check: judging ({judge_type})", requests) as advance:
            verdicts = judge_pairs(pool, config, pairs, by_id, members, advance)
        result.verdicts[judge_type] = verdicts
        result.rows.append(summary_row(judge_type, verdicts, time.perf_counter() - start, seed))
    return result
