"""``judge-check``: measure a judge before trusting it, on seeded probe pairs whose better answer is known.

Every probe is (instruction, better response, worse response, kind). The kinds are failure modes a useful judge
must see through: a wrong sum, garbage characters, a fluent but off-topic answer, an answer cut mid-sentence and
a phrase looped over and over. For each judge type and each pool member as judge, the pairwise accuracy is the
share of probes whose better response scores strictly higher (a tie, or a failed judgment on either side, counts
one half: a judge that cannot tell is a coin).
"""

from __future__ import annotations

import random
import string
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import TYPE_CHECKING, Any

from sparta.backends.base import JUDGES, Progress
from sparta.config import JudgeConfig
from sparta.records import Instruction, JudgeRequest, Judgment, Response
from sparta.registry import Registry

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool


@dataclass(frozen=True)
class Probe:
    id: str
    kind: str
    instruction: str
    better: str
    worse: str


# --------------------------------------------------------------------------------------------- sources of answers

_CAPITALS = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Norway", "Oslo"),
    ("Spain", "Madrid"),
    ("Greece", "Athens"),
]
_OPPOSITES = [
    ("hot", "cold"),
    ("tall", "short"),
    ("early", "late"),
    ("open", "closed"),
    ("happy", "sad"),
    ("light", "dark"),
    ("fast", "slow"),
    ("full", "empty"),
    ("young", "old"),
    ("strong", "weak"),
]
_CATEGORIES = {
    "fruits": (["apples", "pears", "plums", "cherries", "bananas", "grapes"], "sweet and grow on plants"),
    "colours": (["red", "blue", "green", "yellow", "purple", "orange"], "colours of the rainbow or close to it"),
    "animals that live in the sea": (["sharks", "whales", "octopuses", "dolphins", "crabs"], "at home in salt water"),
    "planets": (["Mars", "Venus", "Jupiter", "Saturn", "Mercury", "Neptune"], "planets that orbit the Sun"),
    "musical instruments": (["the piano", "the violin", "the flute", "the drums", "the guitar"], "used to make music"),
}
_EXPLANATIONS = [
    (
        "Why do we need sleep?",
        "Sleep lets the body and the brain recover. During sleep, memories are stored and tissues repair "
        "themselves. Most adults need seven to nine hours each night.",
    ),
    (
        "Why is the sky blue?",
        "Sunlight is made of many colours. Air molecules scatter blue light much more than red light, so blue "
        "light reaches our eyes from every part of the sky.",
    ),
    (
        "How do plants make their food?",
        "Plants make their food by photosynthesis. Their leaves use the energy of sunlight to turn water and "
        "carbon dioxide into sugar, and they release oxygen.",
    ),
    (
        "What is a good way to save money?",
        "A simple way is to set aside a fixed part of every pay cheque before spending anything. Tracking your "
        "spending for a month also shows where money can be saved.",
    ),
    (
        "Why should we drink water every day?",
        "The body loses water all day through breath, sweat and urine. Drinking water keeps the blood flowing, "
        "controls body temperature and helps the kidneys work.",
    ),
    (
        "How does a bicycle stay upright?",
        "A moving bicycle stays upright because the rider steers into any lean. The shape of the front fork "
        "also turns the wheel toward the fall, which corrects it.",
    ),
]


def _capital(rng: random.Random) -> tuple[str, str]:
    country, city = rng.choice(_CAPITALS)
    answer = f"The capital of {country} is {city}. It is also one of its largest cities."
    return f"What is the capital of {country}?", answer


def _opposite(rng: random.Random) -> tuple[str, str]:
    word, other = rng.choice(_OPPOSITES)
    return (
        f"What is the opposite of the word '{word}'?",
        f"The opposite of '{word}' is '{other}'. The two words describe the two ends of the same scale.",
    )


def _three(rng: random.Random) -> tuple[str, str]:
    category = rng.choice(sorted(_CATEGORIES))
    items, common = _CATEGORIES[category]
    a, b, c = rng.sample(items, 3)
    return f"Name three {category}.", f"Three {category} are {a}, {b} and {c}. All of them are {common}."


def _explain(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_EXPLANATIONS)


_TOPICS: list[Callable[[random.Random], tuple[str, str]]] = [_capital, _opposite, _three, _explain]


def _answered(rng: random.Random) -> tuple[str, str]:
    """A procedurally drawn instruction with a correct answer of at least two sentences."""
    return rng.choice(_TOPICS)(rng)


# --------------------------------------------------------------------------------------------- probe kinds

PROBE_KINDS: Registry[Callable[[random.Random], tuple[str, str, str]]] = Registry("probe kind")
"""kind -> rng -> (instruction, better, worse)."""


@PROBE_KINDS.register("arithmetic")
def _arithmetic(rng: random.Random) -> tuple[str, str, str]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    op, value = rng.choice([("+", a + b), ("-", a - b), ("*", a * b)])
    wrong = value + rng.choice([-1, 1]) * rng.choice([1, 2, 10, 11, 20])
    question = f"What is {a} {op} {b}?"
    return question, f"{a} {op} {b} = {value}.", f"{a} {op} {b} = {wrong}."


@PROBE_KINDS.register("garbage")
def _garbage(rng: random.Random) -> tuple[str, str, str]:
    instruction, answer = _answered(rng)
    alphabet = string.ascii_letters + string.digits + "#@%&*;:/\\|~^"
    words, size = [], 0
    while size < len(answer):
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        words.append(word)
        size += len(word) + 1
    return instruction, answer, " ".join(words)


@PROBE_KINDS.register("off_topic")
def _off_topic(rng: random.Random) -> tuple[str, str, str]:
    topic, other_topic = rng.sample(_TOPICS, 2)
    instruction, answer = topic(rng)
    _, other = other_topic(rng)
    return instruction, answer, other


@PROBE_KINDS.register("truncated")
def _truncated(rng: random.Random) -> tuple[str, str, str]:
    instruction, answer = _answered(rng)
    head, _, last = answer.rpartition(". ")
    words = last.split()
    cut = rng.randint(1, max(1, len(words) - 2))  # keep at least one word, drop at least two
    return instruction, answer, f"{head}. {' '.join(words[:cut])}"


@PROBE_KINDS.register("repetitive")
def _repetitive(rng: random.Random) -> tuple[str, str, str]:
    instruction, answer = _answered(rng)
    words = answer.split()
    phrase = " ".join(words[: rng.randint(3, 6)])
    return instruction, answer, " ".join([phrase] * rng.randint(6, 12))


KINDS = ("arithmetic", "garbage", "off_topic", "truncated", "repetitive")


def make_probes(n_per_kind: int, seed: int, kinds: Sequence[str] = KINDS) -> list[Probe]:
    """``n_per_kind`` probes of every kind; the same seed gives the same probes, each kind from its own stream."""
    probes = []
    for kind in kinds:
        make = PROBE_KINDS.get(kind)
        rng = random.Random(f"sparta-probes/{seed}/{kind}")
        for i in range(n_per_kind):
            instruction, better, worse = make(rng)
            probes.append(Probe(f"{kind}-{i:03d}", kind, instruction, better, worse))
    return probes


# --------------------------------------------------------------------------------------------- judge-check


def _quiet(_: int) -> None:
    return None


def _requests(member: str, probes: Sequence[Probe]) -> list[JudgeRequest]:
    """Two requests per probe, better then worse."""
    out = []
    for p in probes:
        instruction = Instruction(p.id, p.instruction, domain=p.kind)
        out.append(JudgeRequest(member, instruction, Response(p.id, "better", p.better)))
        out.append(JudgeRequest(member, instruction, Response(p.id, "worse", p.worse)))
    return out


def pair_outcome(better: Judgment, worse: Judgment) -> float:
    """1 if the better response scored strictly higher, 0 if lower, 1/2 for a tie or a failed judgment."""
    if better.score is None or worse.score is None or better.score == worse.score:
        return 0.5
    return 1.0 if better.score > worse.score else 0.0


def _row(
    judge_type: str, member: str, probes: Sequence[Probe], judged: list[Judgment], seconds: float
) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    for p, better, worse in zip(probes, judged[0::2], judged[1::2], strict=True):
        by_kind[p.kind].append(pair_outcome(better, worse))
    row: dict[str, Any] = {"judge_type": judge_type, "judge": member}
    row.update({kind: fmean(outcomes) for kind, outcomes in by_kind.items()})
    row["overall"] = fmean(o for outcomes in by_kind.values() for o in outcomes)
    row["failures"] = sum(j.score is None for j in judged)
    row["judgments"] = len(judged)
    row["seconds"] = seconds
    row["judgments_per_s"] = len(judged) / seconds if seconds > 0 else float("inf")
    return row


def judge_check(
    pool: ModelPool,
    judge_types: Sequence[str],
    judge_config: JudgeConfig,
    n_per_kind: int = 10,
    seed: int = 0,
    progress: Progress = _quiet,
    kinds: Sequence[str] = KINDS,
    members: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per (judge type, pool member as judge): accuracy per probe kind and ``overall``, failures, speed.

    ``judge_config`` supplies every setting but the type; ``members`` are the judges (default: every pool member).
    Rows are plain data for the caller to print or save.
    """
    if n_per_kind < 1:
        raise ValueError(f"judge_check: n_per_kind must be at least 1, got {n_per_kind}")
    probes = make_probes(n_per_kind, seed, kinds)
    rows = []
    for judge_type in judge_types:
        judge = JUDGES.get(judge_type)(pool, judge_config.model_copy(update={"type": judge_type}))
        for member in members or pool.members:
            start = time.perf_counter()
            judged = judge.score(_requests(member, probes), progress)
            rows.append(_row(judge_type, member, probes, judged, time.perf_counter() - start))
    return rows


def best_judge_type(rows: Sequence[dict[str, Any]]) -> str:
    """The judge type with the highest mean ``overall`` accuracy over its judges (ties: the faster one)."""
    if not rows:
        raise ValueError("best_judge_type: no judge-check rows")
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_type[row["judge_type"]].append(row)

    def merit(judge_type: str) -> tuple[float, float]:
        group = by_type[judge_type]
        return fmean(r["overall"] for r in group), fmean(r["judgments_per_s"] for r in group)

    return max(by_type, key=merit)
