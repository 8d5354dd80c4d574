"""A member trained on worker 1 is, on worker 0, exactly the adapter the driver wrote: its log-probabilities move
as DPO moves them, identically on both workers."""

import sys

import pytest
from ray_runs import ON_RAY, adapters, largest_difference, tiny_config

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module

from sparta.records import PreferencePair  # noqa: E402
from sparta.rundir import PAIRS, STATE_JSON, read_json, read_jsonl, round_dir  # noqa: E402
from sparta.seeding import derive_seed  # noqa: E402


def preference_margins(tribe, member: str, pairs: list[PreferencePair]) -> list[float]:
    """log p(chosen | prompt) - log p(rejected | prompt) under ``member``, pair by pair (on a worker)."""
    import torch

    pool = tribe.pool
    model, tokenizer = pool.model(member), pool.tokenizer(member)
    model.eval()

    def logprob(prompt_ids: list[int], text: str) -> float:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + ids])).logits[0, len(prompt_ids) - 1 : -1]
        return (
            torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids, dtype=torch.long)[:, None]).sum().item()
        )

    margins = []
    for pair in pairs:
        prompt = tokenizer(pool.prompt_text(member, pair.prompt), add_special_tokens=False)["input_ids"]
        margins.append(logprob(prompt, pair.chosen) - logprob(prompt, pair.rejected))
    return margins


def adapter_weights(tribe, member: str) -> dict:
    from peft import get_peft_model_state_dict

    return {k: v.clone() for k, v in get_peft_model_state_dict(tribe.pool.model(member), adapter_name=member).items()}


def test_adapter_trained_on_worker_1_is_what_worker_0_uses(tmp_path, local_run, ray_run):
    local_out, _ = local_run
    _, _, tribe = ray_run
    pairs = [PreferencePair.from_dict(row) for row in read_jsonl(round_dir(local_out, 2) / PAIRS)]
    seed = derive_seed(read_json(local_out / STATE_JSON)["seed"], 2, "training")  # round 2's, as the loop derives it
    tribe.load_round(round_dir(local_out, 1))  # the pool as round 2 starts
    before = tribe.workers.apply(0, preference_margins, "careful", pairs)
    metrics = tribe.train(pairs, tmp_path, seed)
    assert metrics["members"]["careful"]["worker"] == 1
    on_worker_0 = tribe.workers.apply(0, preference_margins, "careful", pairs)
    on_worker_1 = tribe.workers.apply(1, preference_margins, "careful", pairs)
    weights_on_worker_0 = tribe.workers.apply(0, adapter_weights, "careful")

    assert on_worker_0 == pytest.approx(on_worker_1, abs=1e-6)
    assert on_worker_0 != pytest.approx(before, abs=1e-6)
    assert sum(on_worker_0) / len(pairs) > sum(before) / len(pairs)  # DPO widened the chosen-rejected margin
    written = adapters(local_out)[(2, "careful")]  # the local run's round-2 adapter: same start, pairs and seed
    assert weights_on_worker_0.keys() == written.keys()
    assert max((weights_on_worker_0[k] - written[k]).abs().max().item() for k in written) <= 1e-6
    assert (tmp_path / "adapters" / "careful" / "adapter_model.safetensors").is_file()  # the driver wrote it


def test_the_vllm_engine_trains_on_ray_workers(tmp_path, local_run, ray_run):
    """pool.engine=vllm with backend.placement=ray: the servers answer and judge, the Ray workers train."""
    from sparta.backends.ray.learner import RayLearner
    from sparta.backends.vllm.tribe import VllmTribe

    local_out, _ = local_run
    _, _, tribe = ray_run
    config = tiny_config(*ON_RAY, "pool.engine=vllm")
    engine = VllmTribe(config, RayLearner(config, tribe.workers))  # no server starts before a request is sent
    assert engine.pool.prompt_text("careful", "Hi?") == tribe.workers.apply(
        1, lambda hf_tribe: hf_tribe.pool.prompt_text("careful", "Hi?")
    )  # the driver's pool, for the servers' prompts, templates as the workers do
    pairs = [PreferencePair.from_dict(row) for row in read_jsonl(round_dir(local_out, 2) / PAIRS)]
    seed = derive_seed(read_json(local_out / STATE_JSON)["seed"], 2, "training")
    engine.load_round(round_dir(local_out, 1))
    engine.train(pairs, round_dir(tmp_path, 2), seed)
    engine.close()  # its learner did not start these workers, so they keep running
    assert tribe.workers.apply(0, lambda hf_tribe: hf_tribe.members) == ["terse", "careful", "playful"]
    trained = adapters(tmp_path, rounds=(2,))
    assert (
        largest_difference(trained, {key: value for key, value in adapters(local_out).items() if key in trained})
        <= 1e-6
    )
