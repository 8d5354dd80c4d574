"""Generation: order, metadata, seeds per request (an answer does not depend on its batch), the long-prompt policy."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sparta.backends.hf.generation import SKIPPED, PromptTooLongError, generate  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.config import LoraConfig, PoolConfig  # noqa: E402
from sparta.records import Instruction  # noqa: E402


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> ModelPool:
    config = PoolConfig.model_validate(
        {
            "members": [
                {"name": "hot", "model": "tiny-llama", "system_prompt": "Answer briefly."},
                {"name": "greedy", "model": "tiny-llama", "sampling": {"temperature": 0, "max_new_tokens": 12}},
                {"name": "other", "model": "tiny-llama-1"},
            ],
            "sampling": {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 10},
            "max_prompt_tokens": 200,
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("cache")))
        pool = ModelPool(config, LoraConfig(r=4, alpha=8), seed=0)
    with torch.no_grad():  # make the members differ from their base, as after a round of training
        for _, model, members in pool.bases():
            for member in members:
                for name, p in model.named_parameters():
                    if f"lora_B.{member}." in name:
                        p.normal_(std=0.05)
    return pool


def _instructions(n: int) -> list[Instruction]:
    return [Instruction(f"q{i}", f"What is {i} + {3 * i}?" + " Show the steps." * (i % 4)) for i in range(n)]


def test_order_metadata_and_progress(pool):
    instructions = _instructions(5)
    requests = [(m, x) for x in instructions for m in ("other", "hot", "greedy")]
    seen: list[int] = []
    responses = generate(pool, requests, seed=1, batch_size=4, progress=seen.append)
    assert [(r.model, r.instruction_id) for r in responses] == [(m, x.id) for m, x in requests]
    assert sum(seen) == len(requests)
    tokenizer = pool.tokenizer("hot")
    for (member, instruction), response in zip(requests, responses):
        limit = pool.sampling(member).max_new_tokens
        prompt = pool.prompt_text(member, instruction.text)
        assert response.meta["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert 1 <= response.meta["new_tokens"] <= limit
        assert response.meta["finish"] == ("length" if response.meta["new_tokens"] == limit else "eos")
        assert "<|im_end|>" not in response.text and "<|im_start|>" not in response.text
        assert "What is" not in response.text  # the prompt is stripped


def test_seeded_sampling_is_repeatable_and_independent_of_history(pool):
    requests = [(m, x) for x in _instructions(6) for m in ("hot", "other")]
    first = generate(pool, requests, seed=7, batch_size=4)
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    generate(pool, list(reversed(requests[:5])), seed=99, batch_size=2)
    assert torch.equal(state, torch.random.get_rng_state())  # our own seeding leaves the global RNG alone...
    torch.rand(10)
    again = generate(pool, requests, seed=7, batch_size=4)
    assert [r.text for r in again] == [r.text for r in first]  # ...and is not affected by it
    reseeded = generate(pool, requests, seed=8, batch_size=4)
    assert [r.text for r in reseeded] != [r.text for r in first]


def test_a_sampled_answer_does_not_depend_on_its_batch(pool):
    """Each request samples from its own seed: alone, in a mixed batch, or beside other requests, same text."""
    instructions = _instructions(6)
    requests = [(m, x) for x in instructions for m in ("hot", "other", "greedy")]
    mixed = generate(pool, requests, seed=3, batch_size=len(requests))
    reordered = generate(pool, list(reversed(requests)), seed=3, batch_size=4)[::-1]
    alone = [generate(pool, [request], seed=3, batch_size=1)[0] for request in requests[:6]]
    assert [r.text for r in reordered] == [r.text for r in mixed]
    assert [r.text for r in alone] == [r.text for r in mixed[:6]]
    assert len({r.text for r in mixed if r.model == "hot"}) > 1


def test_each_member_samples_with_its_own_settings_in_a_mixed_batch(pool):
    requests = [(m, x) for x in _instructions(4) for m in ("hot", "greedy")]
    mixed = generate(pool, requests, seed=0, batch_size=8)
    for seed in (1, 2):
        again = generate(pool, requests, seed=seed, batch_size=8)
        greedy = [(a.text, b.text) for a, b in zip(mixed, again) if a.model == "greedy"]
        assert all(a == b for a, b in greedy)  # temperature 0 ignores the seed
        assert any(a.text != b.text for a, b in zip(mixed, again) if a.model == "hot")
    assert max(r.meta["new_tokens"] for r in mixed if r.model == "hot") <= 10
    assert any(r.meta["new_tokens"] > 10 for r in mixed if r.model == "greedy")  # its own max_new_tokens: 12


def test_greedy_answers_do_not_depend_on_batching(pool):
    instructions = _instructions(8)
    together = generate(pool, [("greedy", x) for x in instructions], seed=0, batch_size=8)
    alone = [generate(pool, [("greedy", x)], seed=5, batch_size=1)[0] for x in instructions]
    assert [r.text for r in together] == [r.text for r in alone]
    assert len({r.text for r in together}) > 1


def test_generation_stops_at_end_of_sequence(pool):
    request = [("greedy", _instructions(1)[0])]
    free = generate(pool, request, seed=0)[0]
    assert free.meta["finish"] == "length"
    tokenizer = pool.tokenizer("greedy")
    prompt_ids = tokenizer(
        pool.prompt_text("greedy", request[0][1].text), return_tensors="pt", add_special_tokens=False
    )
    with torch.no_grad():
        tokens = pool.model("greedy").generate(**prompt_ids, max_new_tokens=3, do_sample=False)[0, -3:].tolist()
    config = pool.model("greedy").generation_config
    original = config.eos_token_id
    config.eos_token_id = tokens[2]  # pretend the third token ends the turn
    try:
        stopped = generate(pool, request, seed=0)[0]
    finally:
        config.eos_token_id = original
    assert stopped.meta["finish"] == "eos"
    stop = tokens.index(tokens[2])
    assert stopped.meta["new_tokens"] == stop + 1
    assert stopped.text == tokenizer.decode(tokens[:stop], skip_special_tokens=True).strip()


def test_long_prompts_raise_or_are_skipped(pool, monkeypatch):
    short, long = Instruction("short", "Hi?"), Instruction("long", "word " * 300)
    with pytest.raises(
        PromptTooLongError, match=r"instruction 'long' for member 'hot' is \d+ tokens.*max_prompt_tokens=200"
    ):
        generate(pool, [("hot", short), ("hot", long)], seed=0)
    monkeypatch.setattr(pool.config, "long_prompt", "skip")
    responses = generate(pool, [("hot", short), ("hot", long)], seed=0)
    assert responses[0].text and responses[0].meta["finish"] in ("eos", "length")
    assert responses[1].text == "" and responses[1].meta["skipped"] == SKIPPED
    assert responses[1].meta["prompt_tokens"] > 200 and responses[1].meta["new_tokens"] == 0
