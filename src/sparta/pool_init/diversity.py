"""How different the members of a pool are: SPARTA needs a diverse pool to learn anything from combat.

Every member answers the same held-out prompts greedily (so the differences are the members', not sampling noise).
Two measures come out of the answers:

- **pairwise disagreement**: for two members, the share of verifiable prompts on which their extracted final answers
  differ (``sparta.tasks.extract_answer``; "no answer" is an answer of its own, so two members that both fail to
  answer agree);
- **per-domain accuracy**: the members x domains table of ``score_answer`` means, showing who is expert at what,
  with the share of answers that could be read at all (``answered``).

``measure_diversity`` works on any :class:`~sparta.backends.hf.pool.ModelPool`, e.g. a run's round adapters
loaded into a pool. The pure part, :func:`diversity_from_answers`, takes the answers and is tested on hand-built cases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from statistics import mean
from typing import TYPE_CHECKING, Any

from sparta.config import SamplingConfig
from sparta.records import Instruction
from sparta.tasks import extract_answer, score_answer

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool

ALL = "all"
"""The column of the accuracy table that pools every domain."""


def verifiable(instructions: Sequence[Instruction]) -> list[Instruction]:
    """The instructions with a gold answer and an answer type: the only ones these measures can read."""
    return [x for x in instructions if x.answer is not None and x.answer_type is not None]


def _rate(values: list[float]) -> float | None:
    return mean(values) if values else None


def disagreement(
    instructions: Sequence[Instruction], answers: Mapping[str, Mapping[str, str]], a: str, b: str
) -> float | None:
    """Share of ``instructions`` on which members ``a`` and ``b`` give different extracted answers."""
    differs = [
        extract_answer(x.answer_type, answers[a][x.id]) != extract_answer(x.answer_type, answers[b][x.id])
        for x in instructions
    ]
    return _rate([float(d) for d in differs])


def diversity_from_answers(
    instructions: Sequence[Instruction], answers: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """The measures from ``answers[member][instruction id] = response text`` (every member answers every prompt).

    Returns ``members``, ``domains``, ``instructions`` (verifiable ones used), ``accuracy[member][domain]`` (with an
    ``"all"`` column), ``answered[member][domain]``, ``disagreement[a][b]`` (symmetric, diagonal 0),
    ``mean_disagreement`` (over distinct pairs), ``best[domain]`` (the most accurate member, ties: first in order)
    and ``spread[domain]`` (best minus worst accuracy: how specialised the pool is there).
    """
    items = verifiable(instructions)
    members = list(answers)
    missing = [(m, x.id) for m in members for x in items if x.id not in answers[m]]
    if missing:
        raise ValueError(
            f"no answer from member {missing[0][0]!r} to instruction {missing[0][1]!r} ({len(missing)} missing in all)"
        )
    domains = list(dict.fromkeys(x.domain for x in items))
    by_domain = {d: [x for x in items if x.domain == d] for d in domains}

    def table(member: str, value) -> dict[str, float | None]:
        """A member's mean of ``value(answer, instruction)`` per domain and over all of them."""
        row = {d: _rate([value(answers[member][x.id], x) for x in xs]) for d, xs in by_domain.items()}
        row[ALL] = _rate([value(answers[member][x.id], x) for x in items])
        return row

    def correct(text: str, x: Instruction) -> float:
        return score_answer(x.answer_type, text, x.answer)

    def readable(text: str, x: Instruction) -> float:
        return float(extract_answer(x.answer_type, text) is not None)

    accuracy = {m: table(m, correct) for m in members}
    answered = {m: table(m, readable) for m in members}

    pairs: dict[str, dict[str, float | None]] = defaultdict(dict)
    for m in members:
        pairs[m][m] = 0.0
    for a, b in combinations(members, 2):
        pairs[a][b] = pairs[b][a] = disagreement(items, answers, a, b)
    distinct = [pairs[a][b] for a, b in combinations(members, 2) if pairs[a][b] is not None]

    best, spread = {}, {}
    for d in [*domains, ALL]:
        scores = [(accuracy[m][d], m) for m in members if accuracy[m][d] is not None]
        if scores:
            top = max(s for s, _ in scores)
            best[d] = next(m for s, m in scores if s == top)
            spread[d] = top - min(s for s, _ in scores)
    return {
        "members": members,
        "domains": domains,
        "instructions": len(items),
        "accuracy": accuracy,
        "answered": answered,
        "disagreement": {m: dict(pairs[m]) for m in members},
        "mean_disagreement": _rate(distinct),
        "best": best,
        "spread": spread,
    }


class _Greedy:
    """The pool as it is, except that every member decodes greedily up to ``max_new_tokens``."""

    def __init__(self, pool: ModelPool, max_new_tokens: int) -> None:
        self._pool = pool
        self._sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)

    def sampling(self, member: str) -> SamplingConfig:
        return self._sampling

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def greedy_answers(
    pool: ModelPool,
    instructions: Sequence[Instruction],
    max_new_tokens: int,
    batch_size: int,
    members: Sequence[str] | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, dict[str, str]]:
    """``answers[member][instruction id]``: each member's greedy response to each instruction."""
    from sparta.backends.hf.generation import generate

    members = list(members or pool.members)
    requests = [(m, x) for m in members for x in instructions]
    responses = generate(_Greedy(pool, max_new_tokens), requests, seed=0, batch_size=batch_size, progress=progress)
    answers: dict[str, dict[str, str]] = {m: {} for m in members}
    for r in responses:
        answers[r.model][r.instruction_id] = r.text
    return answers


def measure_diversity(
    pool: ModelPool,
    instructions: Sequence[Instruction],
    max_new_tokens: int = 48,
    batch_size: int = 8,
    members: Sequence[str] | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """Greedy answers of ``members`` (default: the whole pool) to the verifiable ``instructions``, measured.

    The result is :func:`diversity_from_answers`'s, plus ``max_new_tokens`` and ``responses``: one row per
    (member, instruction) with the text, the extracted answer and whether it is correct.
    """
    items = verifiable(instructions)
    if not items:
        raise ValueError("measure_diversity needs instructions with gold answers (answer and answer_type)")
    answers = greedy_answers(pool, items, max_new_tokens, batch_size, members, progress)
    result = diversity_from_answers(items, answers)
    result["max_new_tokens"] = max_new_tokens
    result["responses"] = [
        {
            "member": m,
            "instruction_id": x.id,
            "domain": x.domain,
            "text": answers[m][x.id],
            "extracted": extract_answer(x.answer_type, answers[m][x.id]),
            "correct": score_answer(x.answer_type, answers[m][x.id], x.answer) == 1.0,
        }
        for m in answers
        for x in items
    ]
    return result


def diversity_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One printable row per member: accuracy per domain and overall, the share of readable answers, and the
    member's mean disagreement with the others. Accepts an :class:`InitPoolResult` or a diversity dict."""
    diversity = getattr(result, "diversity", result)
    if not diversity:
        return []
    rows = []
    for m in diversity["members"]:
        others = [v for o, v in diversity["disagreement"][m].items() if o != m and v is not None]
        row: dict[str, Any] = {"member": m}
        row.update({d: diversity["accuracy"][m][d] for d in diversity["domains"]})
        row[ALL] = diversity["accuracy"][m][ALL]
        row["answered"] = diversity["answered"][m][ALL]
        row["disagreement"] = mean(others) if others else None
        rows.append(row)
    return rows
