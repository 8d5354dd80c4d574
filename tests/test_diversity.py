"""Diversity measures: pairwise disagreement of extracted answers and per-domain accuracy, by hand and on a pool."""

from __future__ import annotations

import pytest

from sparta.pool_init.diversity import ALL, disagreement, diversity_from_answers, diversity_rows, verifiable
from sparta.records import Instruction

ITEMS = [
    Instruction("n1", "What is 2 + 3?", "arithmetic", "5", "number"),
    Instruction("n2", "What is 4 + 4?", "arithmetic", "8", "number"),
    Instruction("c1", "Which is a fruit?\nA. car\nB. pear", "choice", "B", "choice"),
    Instruction("y1", "Is 7 even? Answer yes or no.", "yes_no", "no", "label"),
    Instruction("w1", "Write one sentence about rivers.", "writing"),  # open: no gold, left out
]

ANSWERS = {
    # right on arithmetic, wrong elsewhere
    "calc": {
        "n1": "2 + 3 = 5. The answer is 5.",
        "n2": "The answer is 8.",
        "c1": "The answer is (A).",
        "y1": "Yes.",
        "w1": "Rivers flow.",
    },
    # right on choice and yes/no, wrong on arithmetic
    "quiz": {
        "n1": "The answer is 6.",
        "n2": "The answer is 9.",
        "c1": "The answer is (B).",
        "y1": "No, it is odd.",
        "w1": "Water.",
    },
    # never gives a readable answer
    "mute": {"n1": "Hmm.", "n2": "Hmm.", "c1": "Hmm.", "y1": "Hmm.", "w1": "Hmm."},
}


def test_only_verifiable_items_are_measured():
    assert [x.id for x in verifiable(ITEMS)] == ["n1", "n2", "c1", "y1"]
    result = diversity_from_answers(ITEMS, ANSWERS)
    assert result["instructions"] == 4
    assert result["domains"] == ["arithmetic", "choice", "yes_no"]
    assert result["members"] == ["calc", "quiz", "mute"]


def test_accuracy_table_shows_who_is_expert_at_what():
    result = diversity_from_answers(ITEMS, ANSWERS)
    assert result["accuracy"]["calc"] == {"arithmetic": 1.0, "choice": 0.0, "yes_no": 0.0, ALL: 0.5}
    assert result["accuracy"]["quiz"] == {"arithmetic": 0.0, "choice": 1.0, "yes_no": 1.0, ALL: 0.5}
    assert result["accuracy"]["mute"][ALL] == 0.0
    assert result["best"] == {"arithmetic": "calc", "choice": "quiz", "yes_no": "quiz", ALL: "calc"}
    assert result["spread"]["arithmetic"] == 1.0 and result["spread"][ALL] == 0.5


def test_answered_share_counts_readable_answers():
    result = diversity_from_answers(ITEMS, ANSWERS)
    assert result["answered"]["calc"][ALL] == 1.0
    assert result["answered"]["mute"] == {"arithmetic": 0.0, "choice": 0.0, "yes_no": 0.0, ALL: 0.0}


def test_disagreement_compares_extracted_answers_not_wording():
    # same final answers in other words: no disagreement
    twin = {"n1": "It is 5", "n2": "8", "c1": "(A)", "y1": "yes, it is", "w1": "Something else entirely."}
    answers = {**ANSWERS, "twin": twin}
    items = verifiable(ITEMS)
    assert disagreement(items, answers, "calc", "twin") == 0.0
    assert disagreement(items, answers, "calc", "quiz") == 1.0
    # "no answer" is an answer of its own: two mute members agree, a mute and a speaking one do not
    assert disagreement(items, {**answers, "mute2": ANSWERS["mute"]}, "mute", "mute2") == 0.0
    assert disagreement(items, answers, "calc", "mute") == 1.0


def test_disagreement_matrix_is_symmetric_with_a_zero_diagonal():
    half = {"n1": "5", "n2": "9", "c1": "(A)", "y1": "no", "w1": ""}
    result = diversity_from_answers(ITEMS, {"calc": ANSWERS["calc"], "half": half, "quiz": ANSWERS["quiz"]})
    d = result["disagreement"]
    assert d["calc"]["calc"] == 0.0
    assert d["calc"]["half"] == d["half"]["calc"] == 0.5  # differs on n2 and y1
    assert d["half"]["quiz"] == d["quiz"]["half"] == 0.5  # differs on n1 and c1
    assert result["mean_disagreement"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)


def test_a_missing_answer_is_named():
    answers = {"calc": ANSWERS["calc"], "quiz": {k: v for k, v in ANSWERS["quiz"].items() if k != "c1"}}
    with pytest.raises(ValueError, match="member 'quiz' to instruction 'c1'"):
        diversity_from_answers(ITEMS, answers)


def test_rows_for_printing():
    rows = diversity_rows(diversity_from_answers(ITEMS, ANSWERS))
    assert [r["member"] for r in rows] == ["calc", "quiz", "mute"]
    assert list(rows[0]) == ["member", "arithmetic", "choice", "yes_no", ALL, "answered", "disagreement"]
    assert rows[0]["disagreement"] == pytest.approx((1.0 + 1.0) / 2)
    assert diversity_rows({}) == []


# --------------------------------------------------------------------------------------------- on a real pool

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    from sparta.backends.hf.pool import ModelPool
    from sparta.config import LoraConfig, PoolConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model runs fastest on one thread, above all on a busy machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("cache")))
        config = PoolConfig.model_validate(
            {
                "members": [
                    {"name": "a", "model": "tiny-llama"},
                    {"name": "b", "model": "tiny-llama", "sampling": {"temperature": 1.0, "max_new_tokens": 4}},
                    {"name": "c", "model": "tiny-llama"},
                ]
            }
        )
        pool = ModelPool(config, LoraConfig(r=4, alpha=8), seed=0)
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():  # c: an adapter far from the base
            for name, param in pool.model("c").named_parameters():
                if ".c." in name and "lora_" in name:
                    param.copy_(torch.randn(param.shape, generator=generator))
        yield pool
    torch.set_num_threads(threads)


def test_measure_diversity_on_a_pool_is_greedy_and_complete(pool):
    from sparta.pool_init.diversity import measure_diversity
    from sparta.tasks import procedural_instructions

    items = verifiable(procedural_instructions(8, seed=5, domains=["arithmetic", "yes_no"]))
    first = measure_diversity(pool, items, max_new_tokens=6, batch_size=4)
    again = measure_diversity(pool, items, max_new_tokens=6, batch_size=4)
    assert first["responses"] == again["responses"]  # greedy, whatever member b's sampling says
    assert len(first["responses"]) == 3 * len(items)
    assert first["domains"] == ["arithmetic", "yes_no"] and first["max_new_tokens"] == 6
    # a and b are the base (fresh LoRA, B = 0): greedy answers identical
    texts = {m: [r["text"] for r in first["responses"] if r["member"] == m] for m in "abc"}
    assert texts["a"] == texts["b"]
    assert first["disagreement"]["a"]["b"] == 0.0
    assert texts["c"] != texts["a"]


def test_measure_diversity_on_chosen_members_needs_gold_answers(pool):
    from sparta.pool_init.diversity import measure_diversity
    from sparta.tasks import procedural_instructions

    items = procedural_instructions(4, seed=5, domains=["yes_no"])
    result = measure_diversity(pool, items, max_new_tokens=4, batch_size=8, members=["c", "a"])
    assert result["members"] == ["c", "a"]
    with pytest.raises(ValueError, match="gold answers"):
        measure_diversity(pool, procedural_instructions(2, domains=["writing"]), 4, 8)
