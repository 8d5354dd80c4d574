"""The engine-independent judge inputs: token ids from a tokenizer alone, and the HF judges' scores reproduced from
them by a second, plain computation (unbatched forward passes standing in for another engine)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from sparta.backends.hf.judges import GenerateJudge, LikelihoodJudge, LogprobJudge  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.judging import (  # noqa: E402
    JudgeEncoder,
    generate_inputs,
    generate_judgment,
    likelihood_inputs,
    likelihood_judgment,
    logprob_inputs,
    logprob_judgment,
    member_score_tokens,
    reading_from_probabilities,
)
from sparta.config import JudgeConfig, LoraConfig, MemberConfig, PoolConfig  # noqa: E402
from sparta.records import Instruction, JudgeRequest, Response  # noqa: E402

MEMBERS = [{"name": "ann", "model": "tiny-llama", "system_prompt": "You grade answers."}]


@pytest.fixture(scope="module")
def pool(cache) -> ModelPool:
    return ModelPool(PoolConfig.model_validate({"members": MEMBERS}), LoraConfig(r=4, alpha=8), seed=0)


def _requests() -> list[JudgeRequest]:
    texts = ["It is 4.", "Two plus two is four, so the sum is 4.", "seven", "   "]
    return [
        JudgeRequest("ann", Instruction(f"q{k}", f"What is {k} + {k}?"), Response(f"q{k}", "m", text))
        for k, text in enumerate(texts)
    ]


def _encoder(pool: ModelPool, **judge) -> JudgeEncoder:
    return JudgeEncoder(pool.member_config("ann"), pool.tokenizer("ann"), JudgeConfig(**judge))


def _next_token_probs(pool: ModelPool, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = pool.model("ann")(input_ids=torch.tensor([ids])).logits
    return torch.softmax(logits[0, -1].double(), dim=-1)


def test_the_layer_imports_no_torch():
    code = "import sys, sparta.backends.judging; print(any(m.split('.')[0] == 'torch' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_inputs_need_only_a_tokenizer():
    from sparta.provisioning.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    member = MemberConfig(name="ann", model="tiny-llama", system_prompt="Be fair.")
    encoder = JudgeEncoder(member, tokenizer, JudgeConfig(max_response_tokens=3))
    request = JudgeRequest("ann", Instruction("q", "Count."), Response("q", "m", "one two three four five"))
    likely = likelihood_inputs(encoder, request)
    assert likely is not None and likely.truncated and len(likely.target_ids) == 3
    assert tokenizer.decode(likely.context_ids).startswith("<|im_start|>system\nBe fair.<|im_end|>")
    generate = generate_inputs(encoder, request)
    assert tokenizer.decode(generate.prompt_ids).endswith("<|im_start|>assistant\n")
    assert encoder.turn_end in generate.stop_ids and generate.messages[0] == {"role": "system", "content": "Be fair."}


def test_logprob_from_per_token_probabilities_matches_the_hf_judge(pool):
    """The path of a server that reports probabilities of chosen token ids gives the HF judge's scores."""
    for variants, split in (([('{"score":', " ")], False), ([('{"score":', "")], True)):
        judge = LogprobJudge(pool, JudgeConfig(type="logprob", batch_size=4), variants=variants)
        requests = _requests()
        hf = judge.score(requests)
        encoder = _encoder(pool, type="logprob")
        tokens = member_score_tokens(encoder, variants)
        assert tokens.split_ten is split
        for request, expected in zip(requests, hf):
            inputs = logprob_inputs(encoder, tokens, request)
            first = _next_token_probs(pool, inputs.prompt_ids)
            after = _next_token_probs(pool, inputs.after_one_ids) if inputs.after_one_ids else None
            reading = reading_from_probabilities(
                tokens,
                {t: float(first[t]) for t in tokens.first.values()},
                {t: float(after[t]) for t in tokens.digit_ids} if after is not None else None,
            )
            assert logprob_judgment(request, reading).score == pytest.approx(expected.score, abs=1e-5)


def test_likelihood_from_target_logprobs_matches_the_hf_judge(pool):
    requests = _requests()
    hf = LikelihoodJudge(pool, JudgeConfig(type="likelihood", batch_size=4)).score(requests)
    encoder = _encoder(pool, type="likelihood")
    for request, expected in zip(requests, hf):
        inputs = likelihood_inputs(encoder, request)
        if inputs is None:
            assert request.response.text.strip() == "" and expected.score == 1.0
            continue
        ids = inputs.context_ids + inputs.target_ids
        with torch.no_grad():
            logits = pool.model("ann")(input_ids=torch.tensor([ids])).logits[0].double()
        steps = torch.log_softmax(logits, dim=-1)
        start = len(inputs.context_ids) - 1
        logprobs = [float(steps[start + t, tok]) for t, tok in enumerate(inputs.target_ids)]
        judged = likelihood_judgment(request, inputs, logprobs, encoder.config)
        assert judged.score == pytest.approx(expected.score, abs=1e-5)
        assert json.loads(judged.raw)["tokens"] == json.loads(expected.raw)["tokens"]


def test_generate_from_a_greedy_reply_matches_the_hf_judge(pool):
    requests = _requests()[:2]
    config = JudgeConfig(type="generate", max_new_tokens=5)
    hf = GenerateJudge(pool, config).score(requests)
    encoder = _encoder(pool, type="generate", max_new_tokens=5)
    for request, expected in zip(requests, hf):
        inputs = generate_inputs(encoder, request)
        reply: list[int] = []
        for _ in range(inputs.max_new_tokens):  # greedy decoding by hand, stopped at the stop ids
            token = int(_next_token_probs(pool, inputs.prompt_ids + reply).argmax())
            if token in inputs.stop_ids:
                break
            reply.append(token)
        text = pool.tokenizer("ann").decode(reply, skip_special_tokens=True)
        assert generate_judgment(request, text) == expected
