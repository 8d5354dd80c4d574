"""Mixed-adapter batches and shared prefixes on a real tiny Llama pool: every logit equals a plain per-member pass."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sparta.backends.hf.decoding import DecodeRow, decode  # noqa: E402
from sparta.backends.hf.forward import ContextCache, Running, _cheapest_rows, pack_rows, plan_prefixes  # noqa: E402
from sparta.backends.hf.pool import ModelPool  # noqa: E402
from sparta.backends.hf.row_adapters import adapter_runs  # noqa: E402
from sparta.config import LoraConfig, PoolConfig  # noqa: E402

MEMBERS = ["ann", "ben", "cid"]


@pytest.fixture(scope="module")
def pool(cache) -> ModelPool:
    members = [{"name": m, "model": "tiny-llama"} for m in MEMBERS]
    pool = ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)
    with torch.no_grad():  # members that differ from the base and from each other
        for name, param in pool.bases()[0][1].named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
    return pool


def _seqs(pool: ModelPool, n: int) -> list[list[int]]:
    tokenizer = pool.tokenizer("ann")
    texts = [f"What is {k} + {2 * k}? The answer is" + " then" * (k % 4) for k in range(n)]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _plain_logits(pool: ModelPool, member: str, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return pool.model(member)(input_ids=torch.tensor([ids])).logits[0].float()


def _batched(pool: ModelPool, seqs, adapters, keep: int, shared=None) -> torch.Tensor:
    model = pool.bases()[0][1]
    with torch.inference_mode(), Running(model) as running:
        if shared is None:
            return running.prefill(seqs, adapters, pool.tokenizer("ann").pad_token_id, keep)
        return running.prefill_shared(shared, adapters, pool.tokenizer("ann").pad_token_id, keep)


@pytest.mark.parametrize("order", ["grouped", "interleaved"])
def test_each_row_gets_its_own_adapter(pool, order):
    """Rows grouped by adapter take the sliced path, interleaved rows PEFT's adapter_names: both equal plain passes."""
    seqs = _seqs(pool, 6)
    adapters = ["ann", "ann", "ben", "ben", "cid", "cid"]
    if order == "interleaved":
        adapters = ["ann", "ben", "cid", "ann", "ben", "cid"]
    logits = _batched(pool, seqs, adapters, keep=3)
    for row, (ids, member) in enumerate(zip(seqs, adapters)):
        assert torch.allclose(logits[row], _plain_logits(pool, member, ids)[-3:], atol=1e-5)
    distinct = _plain_logits(pool, "ann", seqs[0])[-1] - _plain_logits(pool, "ben", seqs[0])[-1]
    assert distinct.abs().max() > 1e-2  # the adapters really differ


def test_the_model_is_left_as_it_was_found(pool):
    seqs = _seqs(pool, 3)
    before = _plain_logits(pool, "ben", seqs[1])
    _batched(pool, seqs, ["ann", "ben", "cid"], keep=1)
    assert torch.equal(_plain_logits(pool, "ben", seqs[1]), before)
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in pool.bases()[0][1].modules())


def test_a_shared_prefix_gives_the_logits_of_one_pass(pool):
    stem = _seqs(pool, 1)[0]
    endings = _seqs(pool, 5)
    seqs = [stem + endings[k] for k in range(4)] + [endings[4]]
    adapters = ["ann", "ann", "ben", "ben", "cid"]
    keys = [("ann", 0), ("ann", 0), ("ben", 0), ("ben", 0), ("cid", 1)]
    plan = plan_prefixes(seqs, keys, [3] * len(seqs))
    assert plan is not None and plan.saved_tokens >= 2 * len(stem)
    shared = _batched(pool, seqs, adapters, keep=3, shared=plan)
    single = _batched(pool, seqs, adapters, keep=3)
    assert torch.allclose(shared, single, atol=1e-5)


def test_greedy_decoding_of_a_mixed_batch_equals_each_row_alone(pool):
    """Rows stop at different lengths and leave the batch; the others go on unchanged."""
    seqs = _seqs(pool, 5)
    rows = [
        DecodeRow(ids, member, 0.0, 1.0, limit, frozenset({-1}), 0)
        for ids, member, limit in zip(seqs, ["ann", "ann", "ben", "cid", "cid"], [3, 9, 5, 1, 7])
    ]
    model, pad = pool.bases()[0][1], pool.tokenizer("ann").pad_token_id
    with torch.inference_mode():
        together = decode(model, rows, pad)
        alone = [decode(model, [row], pad)[0] for row in rows]
    assert together == alone
    assert [len(t) for t in together] == [3, 9, 5, 1, 7]


@settings(max_examples=80, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=8), min_size=1, max_size=7),
    data=st.data(),
)
def test_prefix_plan_cuts_every_row_back_into_itself(seqs, data):
    keys = data.draw(st.lists(st.integers(0, 2), min_size=len(seqs), max_size=len(seqs)))
    tails = data.draw(st.lists(st.integers(0, 3), min_size=len(seqs), max_size=len(seqs)))
    plan = plan_prefixes(seqs, keys, tails)
    if plan is None:
        return
    assert len(set(keys)) < len(keys)  # some rows share a key
    for row, seq in enumerate(seqs):
        prefix = plan.prefixes[plan.group_of[row]]
        assert prefix + plan.suffixes[row] == seq
        assert len(prefix) >= 1 and len(plan.suffixes[row]) >= tails[row]
    for a in range(len(seqs)):
        for b in range(len(seqs)):
            assert (plan.group_of[a] == plan.group_of[b]) == (keys[a] == keys[b])
    assert plan.saved_tokens == sum(len(plan.prefixes[g]) for g in plan.group_of) - sum(map(len, plan.prefixes))


def test_adapter_runs():
    assert adapter_runs(["a", "a", "b", "c", "c"]) == [("a", 0, 2), ("b", 2, 3), ("c", 3, 5)]
    assert adapter_runs(["a", "b", "a"]) is None


@pytest.mark.parametrize("token_pairs", [0.0, 1e6])  # many short rows; one row
def test_packed_sequences_of_many_adapters_give_each_its_own_logits(pool, token_pairs):
    """Every token through its own adapter, after its adapter's cached context and its group's shared prefix,
    in one pass: each sequence's last logits equal a plain pass over its whole ids."""
    model = pool.bases()[0][1]
    header = _seqs(pool, 1)[0][:4]
    contexts = ContextCache().get(model, {"ann": header, "ben": header[:2]})
    tails = _seqs(pool, 6)
    seqs = [tails[0], tails[0][:5] + [7, 8, 9], tails[1], tails[2], tails[3], tails[3][:6] + tails[4]]
    adapters = ["ann", "ann", "ben", "cid", "cid", "cid"]
    keys = ["m0", "m0", "m1", "m2", "m3", "m3"]
    row_contexts = [contexts.get(a) for a in adapters]
    pack = pack_rows(seqs, adapters, keys, [2] * len(seqs), row_contexts, token_pairs)
    assert pack is not None and (len(pack.ids) == 1) == (token_pairs > 1)
    assert int((pack.owners >= 0).sum()) < sum(map(len, seqs))  # the two groups' prefixes run once
    with torch.inference_mode(), Running(model) as running:
        logits = running.prefill_packed(pack, pool.tokenizer("ann").pad_token_id, keep=3)
    for row, (ids, member, context) in enumerate(zip(seqs, adapters, row_contexts)):
        whole = (list(context.ids) if context else []) + ids
        assert torch.allclose(logits[row].float(), _plain_logits(pool, member, whole)[-3:], atol=1e-5)


def test_an_adapter_whose_sequences_follow_different_contexts_is_not_packed(pool):
    model = pool.bases()[0][1]
    header = _seqs(pool, 1)[0][:4]
    context = ContextCache().get(model, {"ann": header})["ann"]
    assert pack_rows([[1, 2], [3, 4]], ["ann", "ann"], [0, 1], [1, 1], [context, None], 1.0) is None


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=8), header=st.integers(0, 60))
def test_the_cheapest_rows_place_every_group_once(sizes, header):
    one = _cheapest_rows(sizes, header, token_pairs=1e9)
    many = _cheapest_rows(sizes, header, token_pairs=0.0)
    for rows in (one, many):
        assert sorted(g for row in rows for g in row) == list(range(len(sizes)))

    def padded(rows):  # rows x the longest row
        return len(rows) * max(sum(sizes[g] for g in row) for row in rows)

    assert padded(one) == sum(sizes)  # linear layers dominate: nothing padded
    one_row = sum(sizes) * (sum(sizes) + header)
    assert padded(many) * (padded(many) // len(many) + header) <= one_row  # attention dominates: never worse
    if len(sizes) > 1 and len(set(sizes)) == 1:
        assert len(many) == len(sizes)  # equal groups: a row each, nothing padded, least attention


def test_an_adapter_added_after_a_batch_gets_its_own_layers(cache):
    """The LoRA layers found for a model are found again once an adapter on other modules joins it: its rows
    then take its own arithmetic, equal to PEFT's own forward with it active."""
    from peft import LoraConfig as PeftLoraConfig

    members = [{"name": m, "model": "tiny-llama"} for m in ("ann", "ben")]
    pool = ModelPool(PoolConfig.model_validate({"members": members}), LoraConfig(r=4, alpha=8), seed=0)
    model = pool.bases()[0][1]
    seqs = _seqs(pool, 2)
    _batched(pool, seqs, ["ann", "ben"], keep=1)  # the model's layers are found here
    model.add_adapter("dan", PeftLoraConfig(r=4, lora_alpha=8, target_modules=["gate_proj", "up_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B.dan" in name:
                param.normal_(std=0.2)
    logits = _batched(pool, seqs, ["ann", "dan"], keep=1)
    model.set_adapter("dan")
    with torch.inference_mode():
        plain = model(input_ids=torch.tensor([seqs[1]])).logits[0, -1:].float()
        model.disable_adapter_layers()
        base = model(input_ids=torch.tensor([seqs[1]])).logits[0, -1:].float()
        model.enable_adapter_layers()
    assert (plain - base).abs().max() > 1e-2  # dan really moves the output
    assert torch.allclose(logits[1], plain, atol=1e-5)
