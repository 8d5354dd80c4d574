"""The HF judges on a real tiny Llama pool: order, batching, and every score checked against a plain forward pass."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from sparta.backends.base import JUDGES  # noqa: E402
from sparta.backends.hf.answer_logps import answer_digest  # noqa: E402
from sparta.backends.hf.judges import (  # noqa: E402
    LikelihoodJudge,
    LogprobJudge,
    likelihood_score,
    repeated_ngram_mask,
    turn_end_id,
)
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.config import JudgeConfig, LoraConfig, PoolConfig  # noqa: E402
from sparta.judge_prompt import judge_instruction, parse_score  # noqa: E402
from sparta.records import Instruction, JudgeRequest, Response  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _own_cache(cache):
    """Every test of this module uses its own model cache."""


@pytest.fixture(scope="module")
def pool(cache) -> ModelPool:
    members = [
        {"name": "ann", "model": "tiny-llama"},
        {"name": "ben", "model": "tiny-llama", "system_prompt": "You are a strict grader."},
    ]
    return ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)


def _request(judge: str, k: int, text: str) -> JudgeRequest:
    return JudgeRequest(judge, Instruction(f"q{k}", f"What is {k} + {k}?"), Response(f"q{k}", f"m{k % 3}", text))


@pytest.fixture(scope="module")
def requests() -> list[JudgeRequest]:
    texts = ["It is 4.", "", "the cat the cat the cat the cat", "Two plus two is four, so the sum is 4.", "5", "seven"]
    return [_request("ann" if k % 2 else "ben", k, t) for k, t in enumerate(texts)]


def _next_token_probs(pool: ModelPool, member: str, ids: list[int]) -> torch.Tensor:
    """Plain unbatched forward pass: the next-token distribution after ``ids``."""
    with torch.no_grad():
        logits = pool.model(member)(input_ids=torch.tensor([ids])).logits
    return torch.softmax(logits[0, -1].double(), dim=-1)


def _ids(pool: ModelPool, member: str, text: str) -> list[int]:
    return pool.tokenizer(member)(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("judge_type", ["generate", "logprob", "likelihood"])
def test_one_judgment_per_request_in_order(pool, requests, judge_type):
    seen = []
    judge = JUDGES.get(judge_type)(pool, JudgeConfig(type=judge_type, batch_size=2, max_new_tokens=6))
    judged = judge.score(requests, progress=seen.append)
    assert [(j.judge, j.model, j.instruction_id) for j in judged] == [
        (r.judge, r.response.model, r.instruction.id) for r in requests
    ]
    assert sum(seen) == len(requests) and max(seen) <= 2
    for j in judged:
        assert j.raw is not None
        assert (j.score is None) == (j.failure is not None)
        assert j.score is None or 1.0 <= j.score <= 10.0
    if judge_type != "generate":
        assert all(j.failure is None for j in judged)


def test_registry_names_the_three_judges():
    assert JUDGES.names() == ["generate", "likelihood", "logprob"]
    with pytest.raises(KeyError, match="known: generate, likelihood, logprob"):
        JUDGES.get("pairwise")


def test_generate_keeps_the_raw_reply_and_never_defaults(pool, requests):
    """Whatever the random model writes (noise, nothing, or by chance a digit), the score is what its reply says."""
    judged = JUDGES.get("generate")(pool, JudgeConfig(max_new_tokens=4)).score(requests)
    assert len(judged) == len(requests)
    for judgment in judged:
        assert judgment.raw is not None
        parsed = parse_score(judgment.raw)
        assert (judgment.score, judgment.failure) == (parsed.score, parsed.failure)


def test_judges_are_batch_invariant(pool, requests):
    """Left padding and position ids must not change a score: batch of 6 == one by one."""
    for judge_type in ("logprob", "likelihood"):
        batched = JUDGES.get(judge_type)(pool, JudgeConfig(type=judge_type, batch_size=8)).score(requests)
        single = JUDGES.get(judge_type)(pool, JudgeConfig(type=judge_type, batch_size=1)).score(requests)
        assert [j.score for j in batched] == pytest.approx([j.score for j in single], abs=1e-5)


def _match_requests() -> list[JudgeRequest]:
    """Two judges each reading both answers of three matches."""
    answers = [("It is 4.", "Four."), ("The sum is 6, since 3 + 3 = 6.", "seven"), ("2", "the cat the cat")]
    return [
        JudgeRequest(judge, Instruction(f"q{k}", f"What is {k} + {k}?"), Response(f"q{k}", side, text))
        for k, pair in enumerate(answers)
        for judge in ("ann", "ben")
        for side, text in zip("ab", pair)
    ]


def _whole(judge):
    """The judge with every row computed whole: padded, no shared prefix, no cached header."""
    judge.min_shared_fraction = float("inf")
    judge.contexts = None
    judge.packing = False
    return judge


@pytest.mark.parametrize("judge_type", ["logprob", "likelihood", "generate"])
def test_shared_prefixes_give_the_scores_of_single_passes(pool, judge_type):
    """The prefix of a match computed once and every judge's header cached change no score."""
    requests = _match_requests()
    config = JudgeConfig(type=judge_type, batch_size=8, max_new_tokens=6)
    shared = JUDGES.get(judge_type)(pool, config)
    shared.min_shared_work = 0  # a tiny model shares no prefix by default: a token costs less than a second pass
    shared.min_shared_fraction = 0  # after the header, the instructions are a small share of these rows
    judged = shared.score(requests)
    headers = sum(len(shared.header(r.judge)) for r in requests)
    assert headers > 0 and shared.spared_tokens > headers
    plain = _whole(JUDGES.get(judge_type)(pool, config))
    alone = _whole(JUDGES.get(judge_type)(pool, config.model_copy(update={"batch_size": 1})))
    for other in (plain.score(requests), alone.score(requests)):
        if judge_type == "generate":
            assert [j.raw for j in judged] == [j.raw for j in other]
        else:
            assert [j.score for j in judged] == pytest.approx([j.score for j in other], abs=1e-5)
    assert plain.spared_tokens == alone.spared_tokens == 0
    default = JUDGES.get(judge_type)(pool, config)
    default.score(requests)
    if judge_type == "generate":
        assert default.spared_tokens == headers  # the header alone: no second pass for the tiny model
    else:  # packed in one pass: every match's prefix is shared, at no cost
        assert default.spared_tokens == shared.spared_tokens
        planned = JUDGES.get(judge_type)(pool, config)
        planned.packing, planned.min_shared_work, planned.min_shared_fraction = False, 0, 0
        assert [j.score for j in planned.score(requests)] == pytest.approx([j.score for j in judged], abs=1e-5)
        assert planned.spared_tokens == shared.spared_tokens


@pytest.mark.parametrize("judge_type", ["logprob", "likelihood"])
def test_the_header_is_the_template_before_the_instruction(pool, judge_type):
    judge = JUDGES.get(judge_type)(pool, JudgeConfig(type=judge_type))
    for member in ("ann", "ben"):
        header = judge.header(member)
        text = pool.tokenizer(member).decode(header)
        assert header and "What is" not in text
        assert all(judge._row(0, r).ids[: len(header)] == header for r in _match_requests() if r.judge == member)
    assert "strict grader" in pool.tokenizer("ben").decode(judge.header("ben"))  # ben's system prompt


def test_a_cached_header_is_computed_again_once_the_adapter_changes(cache):
    members = [{"name": "ann", "model": "tiny-llama"}, {"name": "ben", "model": "tiny-llama"}]
    pool = ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)
    requests = [r for r in _match_requests() if r.judge == "ann"]
    judge = JUDGES.get("logprob")(pool, JudgeConfig(type="logprob"))
    before = [j.score for j in judge.score(requests)]
    adapter = [p for name, p in pool.model("ann").named_parameters() if "lora_B.ann." in name]
    for param in adapter:
        param.grad = torch.full_like(param, -1.0)
    torch.optim.AdamW(adapter, lr=0.5, fused=True).step()  # in place, and without counting a new version
    after = [j.score for j in judge.score(requests)]
    fresh = [j.score for j in _whole(JUDGES.get("logprob")(pool, JudgeConfig(type="logprob"))).score(requests)]
    assert after == pytest.approx(fresh, abs=1e-5)
    assert max(abs(a - b) for a, b in zip(after, before)) > 1e-3  # the change mattered


def _hand_logprob(pool: ModelPool, judge: LogprobJudge, request: JudgeRequest) -> float:
    member = request.judge
    tokens = judge.tokens(member)
    context = pool.prompt_text(member, judge_instruction(request.instruction.text, request.response.text))
    ids = _ids(pool, member, context + tokens.prefix)
    first = _next_token_probs(pool, member, ids)
    raw = {s: float(first[t]) for s, t in tokens.first.items()}
    if tokens.split_ten:
        after_one = _next_token_probs(pool, member, ids + [tokens.first[1]])
        texts = [pool.tokenizer(member).decode([i]) for i in range(len(after_one))]
        p_zero = sum(float(p) for p, t in zip(after_one, texts) if t[:1] == "0" and not t[1:2].isdigit())
        p_end = sum(float(p) for p, t in zip(after_one, texts) if not t[:1].isdigit())
        raw[10], raw[1] = raw[1] * p_zero, raw[1] * p_end
    total = sum(raw.values())
    return sum(s * p / total for s, p in raw.items())


@pytest.mark.parametrize("split", [False, True])
def test_logprob_matches_a_hand_computed_expectation(pool, requests, split):
    # The tiny tokenizer has " 10" as one token; without the space "10" is "1" + "0", which exercises the split.
    variants = [('{"score":', "")] if split else [('{"score":', " ")]
    judge = LogprobJudge(pool, JudgeConfig(type="logprob", batch_size=4), variants=variants)
    judged = judge.score(requests)
    assert judge.tokens("ann").split_ten is split
    for request, judgment in zip(requests, judged):
        assert judgment.score == pytest.approx(_hand_logprob(pool, judge, request), abs=1e-5)
        raw = json.loads(judgment.raw)
        assert sum(raw["p"]) == pytest.approx(1.0, abs=1e-3)
        assert raw["expected"] == pytest.approx(judgment.score, abs=1e-4)


def test_turn_end_is_the_template_end_marker(pool):
    assert pool.tokenizer("ann").convert_ids_to_tokens(turn_end_id(pool, "ann")) == "<|im_end|>"


def test_likelihood_matches_a_hand_computed_mean_logprob(pool):
    request = _request("ben", 3, "Three plus three is six.")
    judged = LikelihoodJudge(pool, JudgeConfig(type="likelihood", likelihood_repeat_ngram=0)).score([request])[0]
    # By hand: ben's chat prompt (system prompt included), then the response and <|im_end|>.
    prompt = _ids(pool, "ben", pool.prompt_text("ben", request.instruction.text))
    assert _ids(pool, "ben", "<|im_start|>system\nYou are a strict grader.<|im_end|>\n")[:1] == prompt[:1]
    targets = _ids(pool, "ben", request.response.text) + [turn_end_id(pool, "ben")]
    newline = _ids(pool, "ben", "\n")  # what the template writes after <|im_end|>: part of the answer DPO trains on
    with torch.no_grad():
        logits = pool.model("ben")(input_ids=torch.tensor([prompt + targets + newline])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    each = [float(logprobs[len(prompt) - 1 + t, tok]) for t, tok in enumerate(targets + newline)]
    mean = sum(each[: len(targets)]) / len(targets)
    assert judged.score == pytest.approx(1 + 9 * math.exp(mean), abs=1e-6)
    raw = json.loads(judged.raw)
    n = len(targets)
    assert raw == {
        "mean_logprob": pytest.approx(mean, abs=1e-4),
        "tokens": n,
        "kept": n,
        "truncated": False,
        "answer_logp": pytest.approx(sum(each), abs=1e-4),
        "answer_digest": answer_digest(prompt, targets + newline),
    }


def test_likelihood_scores_an_answer_cut_by_max_new_tokens_as_a_prefix(pool):
    """No end-of-turn token after an answer that generation cut: the judge scores the prefix it is."""
    text = "Three plus three is"
    complete, cut = (
        JudgeRequest("ben", Instruction("q3", "What is 3 + 3?"), Response("q3", "m", text, {"finish": finish}))
        for finish in ("eos", "length")
    )
    judge = LikelihoodJudge(pool, JudgeConfig(type="likelihood", likelihood_repeat_ngram=0))
    scored_complete, scored_cut = judge.score([complete, cut])
    prompt = _ids(pool, "ben", pool.prompt_text("ben", complete.instruction.text))
    targets = _ids(pool, "ben", text)
    with torch.no_grad():
        logits = pool.model("ben")(input_ids=torch.tensor([prompt + targets])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    mean = sum(float(logprobs[len(prompt) - 1 + t, tok]) for t, tok in enumerate(targets)) / len(targets)
    assert scored_cut.score == pytest.approx(1 + 9 * math.exp(mean), abs=1e-6)
    assert json.loads(scored_cut.raw)["tokens"] == len(targets) and json.loads(scored_cut.raw)["truncated"] is True
    assert json.loads(scored_complete.raw)["tokens"] == len(targets) + 1
    assert json.loads(scored_complete.raw)["truncated"] is False


def test_likelihood_repetition_mitigation_is_applied(pool):
    looped = _request("ann", 2, "the cat the cat the cat the cat")
    plain, mitigated = (
        LikelihoodJudge(pool, JudgeConfig(type="likelihood", likelihood_repeat_ngram=n)).score([looped])[0]
        for n in (0, 2)
    )
    kept = json.loads(mitigated.raw)["kept"]
    tokens = json.loads(mitigated.raw)["tokens"]
    assert json.loads(plain.raw)["kept"] == tokens > kept > 0
    assert mitigated.score < plain.score


def test_likelihood_cuts_the_response_not_the_instruction(pool):
    long = _request("ann", 1, "one two three four five six seven eight nine ten")
    judged = LikelihoodJudge(pool, JudgeConfig(type="likelihood", max_response_tokens=3)).score([long])[0]
    assert json.loads(judged.raw)["tokens"] == 3 and json.loads(judged.raw)["truncated"] is True


def test_likelihood_of_an_empty_response_is_the_lowest_valid_score(pool):
    judged = LikelihoodJudge(pool, JudgeConfig(type="likelihood")).score([_request("ann", 1, "  ")])[0]
    assert (judged.score, judged.failure) == (1.0, None)


def test_each_member_judges_with_its_own_adapter(cache):
    members = [{"name": "x", "model": "tiny-llama"}, {"name": "y", "model": "tiny-llama"}]
    config = PoolConfig.model_validate({"members": members})
    pool = ModelPool(config, LoraConfig(r=4, alpha=8), seed=0)
    with torch.no_grad():  # move y away from the base: a fresh LoRA has B = 0
        for name, param in pool.model("y").named_parameters():
            if "lora_B" in name and ".y." in name:
                param.add_(0.5)
    same = [_request(member, 1, "It is 2.") for member in ("x", "y", "x")]
    scores = [j.score for j in JUDGES.get("likelihood")(pool, JudgeConfig(type="likelihood")).score(same)]
    assert scores[0] == pytest.approx(scores[2], abs=1e-6) and scores[0] != pytest.approx(scores[1], abs=1e-4)


def test_repeated_ngram_mask():
    assert repeated_ngram_mask([1, 2, 1, 2, 1, 2], 2) == [False, False, True, True, True, True]
    assert repeated_ngram_mask([1, 2, 3, 4], 2) == [False] * 4
    assert repeated_ngram_mask([5, 5, 5], 1) == [False, True, True]
    assert repeated_ngram_mask([1], 3) == [False]


def test_likelihood_score_and_its_mitigations():
    lps = [math.log(0.5), math.log(0.5), math.log(0.9), math.log(0.9)]
    ids = [7, 8, 7, 8]
    assert likelihood_score(lps, ids) == pytest.approx(1 + 9 * math.sqrt(0.5 * 0.9))
    # The repeated bigram (7, 8) leaves the mean, and only half the tokens remain.
    assert likelihood_score(lps, ids, repeat_ngram=2) == pytest.approx(1 + 9 * 0.5 * 0.5)
    assert likelihood_score(lps, ids, min_tokens=8) == pytest.approx(1 + 9 * math.sqrt(0.45) * 0.5)
    assert likelihood_score([], []) == 1.0
    with pytest.raises(ValueError, match="3 log-probabilities for 2 tokens"):
        likelihood_score([0.0] * 3, [1, 2])


def test_config_validates_the_likelihood_knobs():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="likelihood_repeat_ngram"):
        JudgeConfig(likelihood_repeat_ngram=-1)
    with pytest.raises(ValidationError, match="likelihood_min_tokens"):
        JudgeConfig(likelihood_min_tokens=-2)
