"""judge-check --gold on the tiny model: sampling through the pool, judging every pair with the other members."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from sparta.backends.base import JUDGES  # noqa: E402
from sparta.backends.hf.gold_check import gold_items, judge_pairs, sample_answers  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.cli import app  # noqa: E402
from sparta.config import JudgeConfig, LoraConfig, PoolConfig  # noqa: E402
from sparta.judge_validity import GoldPair, Sample, sampling_variants  # noqa: E402
from sparta.records import Instruction, JudgeRequest, Response  # noqa: E402
from sparta.tasks import score_answer  # noqa: E402

ITEMS = [
    Instruction(f"q{k}", f"Question {k}: name a letter.", "letters", answer, "text")
    for k, answer in enumerate(["c", "l", "g", "d"])
]


@pytest.fixture(scope="module")
def pool_and_variants(cache):
    members = [{"name": n, "model": "tiny-llama", "system_prompt": f"You are {n}."} for n in ("ann", "ben", "cy")]
    config = PoolConfig.model_validate({"members": members, "sampling": {"max_new_tokens": 12}})
    wide, variants = sampling_variants(config, [0.3, 1.0])
    return ModelPool(wide, LoraConfig(r=4, alpha=8), seed=0), variants


def test_gold_items_are_a_seeded_choice_of_gold_scored_items():
    open_item = Instruction("open", "Write a poem.")
    items = [*ITEMS, open_item]
    chosen = gold_items(items, 3, seed=0)
    assert len(chosen) == 3 and open_item not in chosen and chosen == gold_items(items, 3, seed=0)
    assert gold_items(items, 10, seed=0) == gold_items(list(reversed(items)), 10, seed=0)


def test_every_variant_answers_every_item_each_sample(pool_and_variants):
    pool, variants = pool_and_variants
    done = []
    samples = sample_answers(pool, ITEMS, variants, samples=2, seed=0, progress=done.append)
    assert sum(done) == len(samples) == 2 * len(variants) * len(ITEMS)
    assert len({s.id for s in samples}) == len(samples)
    by_source = {v.source: v for v in variants}
    items = {x.id: x for x in ITEMS}
    for s in samples:
        assert (s.member, s.temperature) == (by_source[s.source].member, by_source[s.source].temperature)
        assert s.correct == (score_answer("text", s.text, items[s.item_id].answer) == 1.0)
        assert s.tokens >= 1 and s.truncated == (s.tokens == 12)
    first = {(s.item_id, s.source): s.text for s in samples if s.index == 0}
    second = {(s.item_id, s.source): s.text for s in samples if s.index == 1}
    assert any(first[k] != second[k] for k in first), "each repetition samples with its own seed"
    assert samples == sample_answers(pool, ITEMS, variants, samples=2, seed=0, progress=lambda n: None)


def _sample(item: Instruction, source: str, member: str, index: int, text: str) -> Sample:
    return Sample(
        id=f"{item.id}/{source}/{index}",
        item_id=item.id,
        member=member,
        source=source,
        temperature=0.3,
        index=index,
        text=text,
        tokens=len(text.split()),
        correct=index == 0,
    )


def test_each_pair_is_judged_by_the_members_who_wrote_neither_side(pool_and_variants):
    pool, _ = pool_and_variants
    item = ITEMS[0]
    right = _sample(item, "ann-t030", "ann", 0, "The letter is c.")
    wrong = _sample(item, "ann-t030", "ann", 1, "No letter at all, sorry.")
    other = _sample(item, "ben-t030", "ben", 1, "Perhaps x.")
    pairs = [
        GoldPair(kind="decided", item_id=item.id, first=right, second=wrong, same_source=True),
        GoldPair(kind="decided", item_id=item.id, first=right, second=other, same_source=False),
    ]
    done = []
    config = JudgeConfig(type="likelihood")
    verdicts = judge_pairs(pool, config, pairs, {item.id: item}, ["ann", "ben", "cy"], done.append)
    assert [sorted(v.scores) for v in verdicts] == [["ben", "cy"], ["cy"]]
    assert sum(done) == 5  # ben: right, wrong; cy: right, wrong, other (its score of `right` serves both pairs)
    direct = JUDGES.get("likelihood")(pool, config).score(
        [JudgeRequest("cy", item, Response(item.id, s.source, s.text)) for s in (right, wrong, other)]
    )
    cy = [j.score for j in direct]
    assert verdicts[0].scores["cy"] == pytest.approx((cy[0], cy[1]))
    assert verdicts[1].scores["cy"] == pytest.approx((cy[0], cy[2]))


def test_cli_gold_check_writes_every_answer_pair_and_rate(tmp_path, cache, monkeypatch):
    items = tmp_path / "letters.jsonl"
    items.write_text("".join(json.dumps({"prompt": x.text, "answer": x.answer}) + "\n" for x in ITEMS * 3))
    out = tmp_path / "check.json"
    args = [
        "judge-check",
        "configs/tiny.yaml",
        "--types",
        "likelihood,logprob",
        "--n",
        "1",
        "--gold",
        "8",
        "--samples",
        "3",
        "--temperatures",
        "0.3,1.0",
        "--out",
        str(out),
        "--set",
        "data.task=jsonl",
        "--set",
        f"data.options={{path: {items}, prompt_field: prompt, answer_field: answer}}",
        "--set",
        "data.holdout_fraction=0",
        "--set",
        "pool.sampling.max_new_tokens=12",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["seconds"] > 0
    assert {row["judge"] for row in record["probes"]} == {"terse", "careful", "playful"}  # members judge, variants not
    gold = record["gold"]
    assert [row["judge_type"] for row in gold["rows"]] == ["likelihood", "logprob"]
    assert len(gold["samples"]) == 3 * 6 * 8  # samples x (3 members x 2 temperatures) x items
    decided = [p for p in gold["pairs"] if p["kind"] == "decided"]
    assert decided, "letters the tiny model writes now and then give right and wrong answers to the same item"
    samples = {s["id"]: s for s in gold["samples"]}
    for pair in decided:
        assert samples[pair["first"]]["correct"] and not samples[pair["second"]]["correct"]
        authors = {samples[pair["first"]]["member"], samples[pair["second"]]["member"]}
        assert set(pair["scores"]["likelihood"]).isdisjoint(authors)
    row = gold["rows"][0]
    assert row["decided"]["pairs"] == len(decided)
    assert 0.0 <= row["decided"]["rate"]["score"] <= 1.0
    assert "gold check" in result.output and "most accurate judge type on gold-decided pairs" in result.output
