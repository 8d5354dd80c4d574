"""The packed output head: the same logits as the module's own forward for every input shape, gradients untouched,
repacked when the weight changes, installed only for the passes inside, its verdict measured once per machine."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sparta.backends.hf import packed_head as ph  # noqa: E402
from sparta.backends.hf.packed_head import HeadChoice, PackedHead, packed_head  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")

ALWAYS = HeadChoice(few=True, many=True, seconds={})
NEVER = HeadChoice(few=False, many=False, seconds={})


def _head(vocab: int = 4096, hidden: int = 256, bias: bool = False) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(hidden, vocab, bias=bias)


class _Model(torch.nn.Module):
    def __init__(self, head: torch.nn.Linear) -> None:
        super().__init__()
        self.head = head

    def get_output_embeddings(self) -> torch.nn.Linear:
        return self.head


def _spy(monkeypatch) -> list[int]:
    """Rows of every packed product, recorded as it runs."""
    calls: list[int] = []
    real = ph._packed_linear

    def spy(x, packed, bias):
        calls.append(len(x))
        return real(x, packed, bias)

    monkeypatch.setattr(ph, "_packed_linear", spy)
    return calls


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(3, 256), (2, 5, 256), (40, 1, 256)])
def test_packed_logits_equal_the_modules_own(shape, bias, monkeypatch):
    head = _head(bias=bias)
    calls = _spy(monkeypatch)
    hidden = torch.randn(*shape)
    with torch.inference_mode():
        expected = torch.nn.functional.linear(hidden, head.weight, head.bias)
        got = PackedHead(head, ALWAYS)(hidden)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    assert calls == [hidden.numel() // 256]


def test_a_strided_slice_is_one_contiguous_product(monkeypatch):
    """``logits_to_keep`` hands the head a strided slice; it is computed as one matrix, packed or not."""
    head = _head()
    hidden = torch.randn(4, 30, 256)[:, -3:, :]
    assert not hidden.is_contiguous()
    products: list[tuple[int, ...]] = []
    real = torch.nn.functional.linear
    monkeypatch.setattr(ph.F, "linear", lambda x, w, b=None: products.append(tuple(x.shape)) or real(x, w, b))
    with torch.inference_mode():
        got = PackedHead(head, NEVER)(hidden)
    assert products == [(12, 256)]
    torch.testing.assert_close(got, real(hidden, head.weight, head.bias))


def test_the_verdict_for_few_and_many_rows_is_followed(monkeypatch):
    calls = _spy(monkeypatch)
    head = _head()
    forward = PackedHead(head, HeadChoice(few=True, many=False, seconds={}))
    with torch.inference_mode():
        forward(torch.randn(2 * ph.FEW_ROWS, 256))
        forward(torch.randn(2 * ph.FEW_ROWS + 1, 256))
    assert calls == [2 * ph.FEW_ROWS]


def test_gradients_take_the_modules_own_product(monkeypatch):
    head = _head()
    calls = _spy(monkeypatch)
    hidden = torch.randn(3, 256, requires_grad=True)
    PackedHead(head, ALWAYS)(hidden).sum().backward()
    assert calls == [] and hidden.grad is not None and head.weight.grad is not None


def test_a_weight_changed_in_place_is_packed_again():
    head = _head()
    forward = PackedHead(head, ALWAYS)
    hidden = torch.randn(3, 256)
    with torch.inference_mode():
        before = forward(hidden)
    with torch.no_grad():
        head.weight.mul_(2)
    with torch.inference_mode():
        after = forward(hidden)
    torch.testing.assert_close(after, 2 * before, rtol=1e-5, atol=1e-4)


def test_installed_inside_only_and_put_back_after_an_error(monkeypatch):
    monkeypatch.setattr(ph, "MIN_PARAMETERS", 0)
    head = _head()
    model = _Model(head)
    with pytest.raises(RuntimeError, match="inside"):
        with packed_head(model, choose=lambda h: ALWAYS):
            assert isinstance(head.forward, PackedHead)
            with packed_head(model, choose=lambda h: pytest.fail("a nested use installs nothing")):
                assert isinstance(head.forward, PackedHead)
            raise RuntimeError("inside")
    assert "forward" not in head.__dict__


def test_small_or_already_patched_heads_are_left_alone():
    small = _head(vocab=64, hidden=16)
    with packed_head(_Model(small), choose=lambda h: pytest.fail("a small head is not measured")):
        assert "forward" not in small.__dict__
    patched = _head()
    patched.forward = marker = lambda x: x
    with packed_head(_Model(patched), choose=lambda h: pytest.fail("a patched head is not measured")):
        assert patched.forward is marker
    assert patched.forward is marker


def test_the_verdict_is_measured_once_per_machine_and_head(cache, monkeypatch):
    head = _head(vocab=4096, hidden=256)
    measured: list[HeadChoice] = []
    real = ph.measure
    monkeypatch.setattr(ph, "measure", lambda h: measured.append(real(h)) or measured[-1])
    first = ph.choose(head)
    assert measured == [first] and set(first.seconds) == {"few_plain", "few_packed", "many_plain", "many_packed"}
    assert all(seconds > 0 for seconds in first.seconds.values())
    assert first.few == (first.seconds["few_packed"] * ph.MIN_SPEEDUP <= first.seconds["few_plain"])
    assert ph.choose(head) == first and len(measured) == 1
    ph.choose(_head(vocab=4096, hidden=128))
    assert len(measured) == 2


def test_a_head_onednn_cannot_compute_is_left_to_pytorch_and_remembered(cache, monkeypatch):
    def fails(head):
        raise RuntimeError("no kernel for this dtype")

    monkeypatch.setattr(ph, "measure", fails)
    head = _head(vocab=2048, hidden=256)
    choice = ph.choose(head)
    assert (choice.few, choice.many) == (False, False) and "no kernel" in choice.note
    monkeypatch.setattr(ph, "measure", lambda h: pytest.fail("the verdict is kept in the cache"))
    assert ph.choose(head) == choice


def test_a_head_converted_to_another_dtype_is_judged_again(monkeypatch):
    monkeypatch.setattr(ph, "MIN_PARAMETERS", 0)
    head = _head()
    model = _Model(head)
    judged: list[torch.dtype] = []

    def choose(h):
        judged.append(h.weight.dtype)
        return NEVER

    for dtype in (torch.float32, torch.float32, torch.bfloat16):
        head.to(dtype)
        with packed_head(model, choose=choose):
            pass
    assert judged == [torch.float32, torch.bfloat16]


def test_judge_scores_through_the_packed_head_equal_the_plain_ones(monkeypatch, cache):
    """A tiny-llama pool judging through ``forward.Running`` with the head packed (threshold lowered, verdict
    forced) gives the plain head's scores."""
    from sparta.backends.hf.judges import LogprobJudge
    from sparta.backends.hf.pool import ModelPool
    from sparta.config import JudgeConfig, LoraConfig, MemberConfig, PoolConfig
    from sparta.records import Instruction, JudgeRequest, Response

    pool = ModelPool(
        PoolConfig(members=[MemberConfig(name=n, model="tiny-llama") for n in ("a", "b")]), LoraConfig(), seed=0
    )
    requests = [
        JudgeRequest(judge, Instruction("q", "What is 2 + 2?"), Response("q", other, text))
        for judge, other, text in (("a", "b", "It is 4."), ("b", "a", "Five, I think, or maybe four."))
    ]
    plain = [j.score for j in LogprobJudge(pool, JudgeConfig(type="logprob")).score(requests)]
    monkeypatch.setattr(ph, "MIN_PARAMETERS", 0)
    monkeypatch.setattr(ph, "choose", lambda head: ALWAYS)
    calls = _spy(monkeypatch)
    packed = [j.score for j in LogprobJudge(pool, JudgeConfig(type="logprob")).score(requests)]
    assert calls, "the judge's passes went through the packed head"
    assert packed == pytest.approx(plain, abs=1e-4)
    head = pool.bases()[0][1].get_output_embeddings()
    assert "forward" not in head.__dict__
