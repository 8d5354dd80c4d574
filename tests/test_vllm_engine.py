"""The vLLM engine against a real vLLM server: agreement with the HF engine, adapters per round, clear errors.

Every member gets its own random (non-zero) LoRA adapter, so each member is a different model on both engines.
Agreement (fp32): likelihood and logprob scores equal to 1e-3 for every member, greedy answers and greedy
judge replies identical for at least 95% of requests; the rates are printed in the summary.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sparta.backends.base import build_tribe  # noqa: E402
from sparta.backends.vllm.adapters import check_servable  # noqa: E402
from sparta.backends.vllm.client import Call, VllmClient  # noqa: E402
from sparta.backends.vllm.errors import (  # noqa: E402
    AdapterRefusedError,
    RequestFailedError,
    ServerStartError,
    ServerUnreachableError,
)
from sparta.backends.vllm.server import LocalServer, ServerSpec, free_port  # noqa: E402
from sparta.backends.vllm.tribe import VllmTribe  # noqa: E402
from sparta.config import ConfigError, SamplingConfig, load_config  # noqa: E402
from sparta.records import Instruction, JudgeRequest  # noqa: E402
from sparta.rundir import adapter_dir, round_dir  # noqa: E402
from sparta.tasks import load_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"
AGREEMENT = 0.95
TOLERANCE = 1e-3


def _config(*overrides: str):
    config = load_config(TINY, ["pool.engine=vllm", *overrides])
    for member in config.pool.members:
        member.sampling = SamplingConfig(temperature=0.0, max_new_tokens=24)  # greedy: comparable across engines
    return config


def _distinct_adapters(tribe: VllmTribe, run: Path, round_index: int, scale: float) -> Path:
    """Give every member a random LoRA update of its own and save it as round ``round_index``'s adapters."""
    path = round_dir(run, round_index)
    for offset, member in enumerate(tribe.members):
        model = tribe.pool.model(member)
        torch.manual_seed(1000 * round_index + offset)
        with torch.no_grad():
            for name, weight in model.named_parameters():
                if f".{member}." in name and "lora_B" in name:
                    weight.normal_(0.0, scale)
        tribe.pool.save_adapter(member, adapter_dir(path, member))
    return path


@pytest.fixture(scope="module")
def tribe(vllm_server, tmp_path_factory) -> VllmTribe:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(vllm_server.cache))
        built = build_tribe(_config(f"vllm.urls=[{vllm_server.url}]"))
    assert isinstance(built, VllmTribe)
    run = tmp_path_factory.mktemp("run")
    built.bind_run(run)
    built.load_round(_distinct_adapters(built, run, 1, scale=0.3))
    return built


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return load_task("procedural", {"size": 40, "seed": 0})[:12]


def _same_rate(pairs) -> float:
    pairs = list(pairs)
    return sum(a == b for a, b in pairs) / len(pairs)


def test_greedy_answers_agree_with_the_hf_engine(tribe, instructions, agreement_log):
    requests = [(member, x) for x in instructions for member in tribe.members]
    served = tribe.generate(requests, seed=5)
    local = tribe.learner.generate(requests, seed=5)
    assert [(r.model, r.instruction_id) for r in served] == [(m, x.id) for m, x in requests]
    rate = _same_rate((a.text, b.text) for a, b in zip(served, local))
    metas = _same_rate((a.meta, b.meta) for a, b in zip(served, local))
    agreement_log.append(
        f"vLLM vs HF greedy answers: {rate:.1%} identical texts, {metas:.1%} identical meta, n={len(requests)}"
    )
    assert rate >= AGREEMENT
    distinct = {r.text for r in served if r.instruction_id == instructions[0].id}
    assert len(distinct) == len(tribe.members)  # the adapters really differ


def _judge_requests(tribe: VllmTribe, instructions: list[Instruction]) -> list[JudgeRequest]:
    responses = tribe.learner.generate([(m, x) for x in instructions[:6] for m in tribe.members[:2]], seed=2)
    by_id = {x.id: x for x in instructions}
    return [JudgeRequest(judge, by_id[r.instruction_id], r) for r in responses for judge in tribe.members]


@pytest.mark.parametrize("judge_type", ["likelihood", "logprob"])
def test_scores_equal_the_hf_engine_for_every_member(tribe, instructions, judge_type, agreement_log):
    tribe.config.judge.type = tribe.learner.config.judge.type = judge_type
    tribe._judge = tribe.learner._judge = None
    requests = _judge_requests(tribe, instructions)
    done: list[int] = []
    served = tribe.judge(requests, progress=done.append)
    local = tribe.learner.judge(requests)
    assert sum(done) == len(requests)
    worst = {member: 0.0 for member in tribe.members}
    for a, b in zip(served, local):
        assert (a.judge, a.model, a.instruction_id) == (b.judge, b.model, b.instruction_id)
        assert a.score is not None and b.score is not None
        worst[a.judge] = max(worst[a.judge], abs(a.score - b.score))
    agreement_log.append(f"vLLM vs HF {judge_type} judge: largest score difference per member {worst}")
    assert max(worst.values()) <= TOLERANCE
    assert len({round(j.score, 6) for j in served}) > 1  # not a constant


def test_a_ten_written_as_one_then_zero_is_read_like_the_hf_engine(tribe, instructions, agreement_log):
    """The tiny tokenizer writes "10" as one token; SmolLM2's writes "1" "0". Score tokens of that second kind
    (single-digit tokens) make both engines take their split-ten path: two requests on vLLM, one pass on HF."""
    from sparta.backends.base import JUDGES
    from sparta.backends.judging import ScoreTokens
    from sparta.backends.judging.logprob import digit_tokens
    from sparta.backends.vllm.judges import LogprobJudge

    tokenizer = tribe.pool.tokenizer(tribe.members[0])
    zeros, digits = digit_tokens(tokenizer)
    split = ScoreTokens('{"score": ', {s: tokenizer.convert_tokens_to_ids(str(s)) for s in range(1, 10)}, zeros, digits)
    assert split.split_ten and zeros and set(zeros) <= set(digits)
    served_judge = LogprobJudge(tribe.pool, tribe.config.judge, tribe._ready("judging"), tribe.adapters)
    local_judge = JUDGES.get("logprob")(tribe.pool, tribe.config.judge)
    for member in tribe.members:
        served_judge._tokens[member] = local_judge._tokens[member] = split
    requests = _judge_requests(tribe, instructions)
    served, local = served_judge.score(requests), local_judge.score(requests)
    worst = max(abs(a.score - b.score) for a, b in zip(served, local))
    agreement_log.append(f"vLLM vs HF logprob judge, '10' split into '1' '0': largest score difference {worst:.1e}")
    assert worst <= TOLERANCE
    assert all(json.loads(a.raw)["p"][9] > 0 for a in served)  # P(10) is read after the "1", not dropped


def test_generate_judge_replies_agree(tribe, instructions, agreement_log):
    tribe.config.judge.type = tribe.learner.config.judge.type = "generate"
    tribe._judge = tribe.learner._judge = None
    requests = _judge_requests(tribe, instructions)
    served, local = tribe.judge(requests), tribe.learner.judge(requests)
    rate = _same_rate(((a.raw, a.score, a.failure), (b.raw, b.score, b.failure)) for a, b in zip(served, local))
    agreement_log.append(f"vLLM vs HF generate judge: {rate:.1%} identical replies, n={len(requests)}")
    assert rate >= AGREEMENT


def _served_member_adapters(url: str, members: list[str]) -> list[str]:
    with urllib.request.urlopen(f"{url}/v1/models", timeout=30) as answer:
        ids = [m["id"] for m in json.loads(answer.read())["data"]]
    return sorted(i for i in ids if i.split("@")[0] in members and "@r" in i)


def test_a_new_round_replaces_every_adapter_under_new_names(tribe, vllm_server, instructions):
    before = _served_member_adapters(vllm_server.url, tribe.members)
    assert [name.split("@")[1][:4] for name in before] == ["r001"] * len(tribe.members)
    old_answer = tribe.generate([(tribe.members[0], instructions[0])], seed=0)[0].text
    tribe.load_round(_distinct_adapters(tribe, tribe.run_dir, 2, scale=0.5))
    new_answer = tribe.generate([(tribe.members[0], instructions[0])], seed=0)[0]
    after = _served_member_adapters(vllm_server.url, tribe.members)
    assert [name.split("@")[1][:4] for name in after] == ["r002"] * len(tribe.members)
    assert new_answer.text == tribe.learner.generate([(tribe.members[0], instructions[0])], seed=0)[0].text
    assert new_answer.text != old_answer


# --------------------------------------------------------------------------------------------- errors


def _bound_tribe(vllm_server, tmp_path, *overrides: str) -> VllmTribe:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(vllm_server.cache))
        built = build_tribe(_config(*overrides))
    built.bind_run(tmp_path)
    return built


def test_an_unreachable_server_names_member_stage_and_url(vllm_server, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    tribe = _bound_tribe(vllm_server, tmp_path, f"vllm.urls=[{url}]")
    with pytest.raises(ServerUnreachableError, match=rf"member 'terse', answering: cannot reach .*{url}"):
        tribe.generate([("terse", Instruction("a", "Say hi."))], seed=0)


def test_an_adapter_the_server_cannot_read_is_refused_with_its_path(vllm_server, tmp_path):
    tribe = _bound_tribe(vllm_server, tmp_path, f"vllm.urls=[{vllm_server.url}]", "vllm.server_run_dir=/not/mounted")
    with pytest.raises(AdapterRefusedError, match=r"member 'terse', judging: .* refused .*/not/mounted/vllm/"):
        tribe.judge([JudgeRequest("careful", Instruction("a", "Say hi."), _response("terse"))])


def _response(member: str):
    from sparta.records import Response

    return Response("a", member, "Hi there.")


def test_a_failed_request_names_member_stage_and_url(vllm_server):
    client = VllmClient([vllm_server.url], timeout=60, parallel_requests=2)
    call = Call(
        "/v1/completions", {"model": "never-loaded@r001", "prompt": [1, 2], "max_tokens": 1}, "playful", "judging"
    )
    with pytest.raises(RequestFailedError, match=rf"member 'playful', judging: .*{vllm_server.url}.* answered 404"):
        client.run([call])


def test_adapters_that_train_the_output_head_are_refused(tmp_path, cache):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from sparta.backends.hf.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-llama"))
    lora = LoraConfig(r=4, target_modules=["q_proj", "lm_head"], task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(tmp_path / "head")
    with pytest.raises(AdapterRefusedError, match=r"member 'terse': .* trains \['lm_head'\]"):
        check_servable(tmp_path / "head", "terse")


def test_the_config_refuses_what_vllm_cannot_serve():
    with pytest.raises(ConfigError, match="training.lora.target_modules: \\['lm_head'\\]"):
        load_config(TINY, ["pool.engine=vllm", "training.lora.target_modules=[q_proj, lm_head]"])
    with pytest.raises(ConfigError, match="serves one base model"):
        load_config(
            TINY,
            [
                "pool.engine=vllm",
                "pool.members=[{name: a, model: tiny-llama}, {name: b, model: x}, {name: c, model: x}]",
            ],
        )
    with pytest.raises(ConfigError, match="did you mean 'vllm'"):
        load_config(TINY, ["pool.engine=vlm"])


def test_a_server_that_cannot_start_quotes_its_log(tmp_path):
    spec = ServerSpec(
        python=sys.executable,  # an environment without vLLM
        model="tiny-llama",
        served_name="sparta-base",
        dtype="float32",
        max_loras=1,
        max_lora_rank=8,
        lora_target_modules=("q_proj",),
        threads=1,
        kv_cache_gb=1.0,
        log_path=tmp_path / "vllm" / "server.log",
        start_timeout=120,
    )
    server = LocalServer(spec)
    with pytest.raises(ServerStartError, match=r"(?s)exited with status 1 .*No module named 'vllm'"):
        server.start()
    assert server.process is None and "vllm.entrypoints.openai.api_server" in spec.log_path.read_text()


def test_a_started_server_is_told_the_pool_s_shape(tmp_path, cache):
    tribe = build_tribe(_config("training.lora.r=12", "vllm.threads=3", "vllm.extra_args=[--max-num-seqs, '16']"))
    tribe.bind_run(tmp_path)
    spec = tribe.server_spec()
    command = spec.command(port=8123)
    assert spec.max_lora_rank == 16  # 12 rounded up to a rank vLLM accepts
    assert spec.max_loras == 3 and spec.lora_target_modules == ("k_proj", "o_proj", "q_proj", "v_proj")
    assert spec.log_path == tmp_path / "vllm" / "server.log"
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[-2:] == ["--max-num-seqs", "16"]
    env = spec.env()
    assert env["OMP_NUM_THREADS"] == "3" and env["HF_HUB_OFFLINE"] == "1" and env["VLLM_HOST_IP"] == "127.0.0.1"
    assert tribe.server is None  # nothing starts before the first request
