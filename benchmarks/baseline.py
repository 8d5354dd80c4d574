"""The answering and judging paths before mixed-member batches, kept here only to be measured against.

The code is the project's own from commit eacff50 (src/sparta/backends/hf/generation.py and judges.py),
unchanged but for names: every member answers in its own batches of ``generation_batch_size`` through
``transformers``' ``generate`` (one ``set_adapter`` per batch, one seed per batch), and every judge scores in
its own batches of ``judge.batch_size`` in one plain forward pass (no shared prefixes). The request encoding and
the judgments come from the same modules as today's path, so both score exactly the same token ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch
from transformers import GenerationConfig

from sparta.backends.base import Progress, _no_progress
from sparta.backends.hf.generation import Prompt, encode_requests, response_from_ids
from sparta.backends.hf.judges import _pad_id, encoder_for
from sparta.backends.hf.pool import ModelPool
from sparta.backends.judging import (
    PREFIX_VARIANTS,
    JudgeEncoder,
    LikelihoodInputs,
    ScoreReading,
    ScoreTokens,
    blank_judgment,
    generate_inputs,
    generate_judgment,
    likelihood_inputs,
    likelihood_judgment,
    logprob_inputs,
    logprob_judgment,
    member_score_tokens,
)
from sparta.config import JudgeConfig, SamplingConfig
from sparta.records import Instruction, JudgeRequest, Judgment, Response
from sparta.seeding import derive_seed


def _quiet(_: int) -> None:
    return None


# --------------------------------------------------------------------------------------------- answering


def _answer_batches(prompts: list[Prompt], members: list[str], batch_size: int) -> list[list[Prompt]]:
    """Group by member in pool order, sort each group by length (then id), cut into batches."""
    batches = []
    for member in members:
        group = sorted(
            (p for p in prompts if p.member == member), key=lambda p: (len(p.ids), p.instruction.id, p.index)
        )
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return batches


def _eos_ids(pool: ModelPool, member: str) -> list[int]:
    configured = pool.model(member).generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if pool.tokenizer(member).eos_token_id is not None:
        ids.add(pool.tokenizer(member).eos_token_id)
    if not ids:
        raise ValueError(f"member {member!r}: its tokenizer and generation config name no end-of-sequence token")
    return sorted(ids)


def _generation_config(sampling: SamplingConfig, eos: list[int], pad: int) -> GenerationConfig:
    """Exactly the member's sampling settings; temperature 0 means greedy decoding."""
    common = {"max_new_tokens": sampling.max_new_tokens, "eos_token_id": eos, "pad_token_id": pad}
    if sampling.temperature == 0:
        return GenerationConfig(do_sample=False, **common)
    return GenerationConfig(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0, **common)


def _left_pad_prompts(batch: list[Prompt], pad: int, device: str) -> dict[str, torch.Tensor]:
    width = max(len(p.ids) for p in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, prompt in enumerate(batch):
        ids[row, width - len(prompt.ids) :] = torch.tensor(prompt.ids)
        mask[row, width - len(prompt.ids) :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _rng_devices(device: str) -> list[int]:
    target = torch.device(device)
    return [target.index or 0] if target.type == "cuda" else []


def _run_batch(pool: ModelPool, batch: list[Prompt], seed: int) -> list[Response]:
    member = batch[0].member
    model, tokenizer = pool.model(member), pool.tokenizer(member)
    eos = _eos_ids(pool, member)
    config = _generation_config(pool.sampling(member), eos, tokenizer.pad_token_id)
    inputs = _left_pad_prompts(batch, tokenizer.pad_token_id, pool.config.device)
    batch_seed = derive_seed(seed, "generate", member, *(p.instruction.id for p in batch))
    model.eval()
    with torch.random.fork_rng(devices=_rng_devices(pool.config.device)), torch.inference_mode():
        torch.manual_seed(batch_seed)
        output = model.generate(**inputs, generation_config=config)
    new = output[:, inputs["input_ids"].shape[1] :].tolist()
    return [response_from_ids(prompt, tokens, set(eos), tokenizer) for prompt, tokens in zip(batch, new)]


def old_generate(
    pool: ModelPool,
    requests: Sequence[tuple[str, Instruction]],
    seed: int,
    batch_size: int | None = None,
    progress: Progress = _no_progress,
) -> list[Response]:
    """Answer every (member, instruction) request; the output order follows the input order."""
    batch_size = batch_size or pool.config.generation_batch_size
    responses, runnable = encode_requests(pool, requests, progress)
    for batch in _answer_batches(runnable, pool.members, batch_size):
        for prompt, response in zip(batch, _run_batch(pool, batch, seed)):
            responses[prompt.index] = response
        progress(len(batch))
    return [r for r in responses if r is not None]


# --------------------------------------------------------------------------------------------- judging


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Left-padded ids, attention mask and position ids (positions restart at 0 on every row's first real token)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _judge_batches(requests: Sequence[JudgeRequest], batch_size: int) -> Iterator[tuple[str, list[int]]]:
    """(judge member, request indices) batches: one member per batch, similar lengths together."""
    by_judge: dict[str, list[int]] = defaultdict(list)
    for i, request in enumerate(requests):
        by_judge[request.judge].append(i)
    for member, indices in by_judge.items():
        indices.sort(key=lambda i: len(requests[i].instruction.text) + len(requests[i].response.text))
        for start in range(0, len(indices), batch_size):
            yield member, indices[start : start + batch_size]


class _OldBatchedJudge:
    """Runs ``_score_batch`` over one-member batches and puts the judgments back in request order."""

    def __init__(self, pool: ModelPool, judge: JudgeConfig) -> None:
        self.pool = pool
        self.config = judge
        self._encoders: dict[str, JudgeEncoder] = {}

    def encoder(self, member: str) -> JudgeEncoder:
        if member not in self._encoders:
            self._encoders[member] = encoder_for(self.pool, member, self.config)
        return self._encoders[member]

    def score(self, requests: Sequence[JudgeRequest], progress: Progress = _quiet) -> list[Judgment]:
        results: list[Judgment | None] = [None] * len(requests)
        for member, indices in _judge_batches(requests, self.config.batch_size):
            model = self.pool.model(member)
            model.eval()
            with torch.inference_mode():
                judged = self._score_batch(member, model, [requests[i] for i in indices])
            for i, judgment in zip(indices, judged, strict=True):
                results[i] = judgment
            progress(len(indices))
        return [j for j in results if j is not None]

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- generate


class OldGenerateJudge(_OldBatchedJudge):
    """The judge writes its verdict (greedy, ``judge.max_new_tokens``); ``parse_score`` reads it."""

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        from transformers import GenerationConfig

        encoder = self.encoder(member)
        inputs = [generate_inputs(encoder, r) for r in requests]
        pad = _pad_id(encoder.tokenizer)
        ids, mask, _ = _left_pad([x.prompt_ids for x in inputs], pad, _device(model))
        greedy = GenerationConfig(
            do_sample=False,
            max_new_tokens=self.config.max_new_tokens,
            eos_token_id=list(encoder.stop_ids),
            pad_token_id=pad,
        )
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=greedy)
        texts = encoder.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        return [generate_judgment(r, text) for r, text in zip(requests, texts, strict=True)]


class OldLogprobJudge(_OldBatchedJudge):
    """Expected score from one forward pass over the judge prompt pre-filled with ``{"score": ``.

    When "10" is "1" + "0" the pass also carries the "1" token: causal attention leaves the logits before it
    unchanged, so one pass gives both P(first token) and P(next token | "1") (docs/judges.md).
    """

    def __init__(self, pool: ModelPool, judge: JudgeConfig, variants: Sequence[tuple[str, str]] = PREFIX_VARIANTS):
        super().__init__(pool, judge)
        self.variants = tuple(variants)
        self._tokens: dict[str, ScoreTokens] = {}
        self._masks: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def tokens(self, member: str) -> ScoreTokens:
        """The member's score tokens, found once."""
        if member not in self._tokens:
            self._tokens[member] = member_score_tokens(self.encoder(member), self.variants)
        return self._tokens[member]

    def _digit_masks(self, member: str, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """("0" tokens, digit tokens) as masks over the model's output vocabulary."""
        if member not in self._masks:
            tokens = self.tokens(member)
            zero = torch.zeros(vocab_size, dtype=torch.bool)
            digit = torch.zeros(vocab_size, dtype=torch.bool)
            zero[[i for i in tokens.zero_ids if i < vocab_size]] = True
            digit[[i for i in tokens.digit_ids if i < vocab_size]] = True
            self._masks[member] = zero, digit
        return self._masks[member]

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        encoder, tokens = self.encoder(member), self.tokens(member)
        inputs = [logprob_inputs(encoder, tokens, r) for r in requests]
        keep = 2 if tokens.split_ten else 1
        seqs = [x.after_one_ids or x.prompt_ids for x in inputs]
        ids, mask, positions = _left_pad(seqs, _pad_id(encoder.tokenizer), _device(model))
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep)
        probs = torch.softmax(logits.logits[:, -keep:].float(), dim=-1).cpu()
        return [logprob_judgment(r, self._reading(member, tokens, probs[b])) for b, r in enumerate(requests)]

    def _reading(self, member: str, tokens: ScoreTokens, probs: torch.Tensor) -> ScoreReading:
        """``probs[0]``: the distribution after the pre-fill; ``probs[1]``: after the "1" when "10" is split."""
        first = {s: float(probs[0, t]) for s, t in tokens.first.items()}
        if not tokens.split_ten:
            return ScoreReading(first)
        zero, digit = self._digit_masks(member, probs.shape[-1])
        after_one = probs[1]
        return ScoreReading(
            first, ten_after_one=float(after_one[zero].sum()), end_after_one=float(after_one[~digit].sum())
        )


class OldLikelihoodJudge(_OldBatchedJudge):
    """The judge's length-normalised likelihood of the response (plus the end of its turn) after the instruction.

    An empty (or blank) response scores 1 without a forward pass: a valid, very bad answer.
    """

    def _score_batch(self, member: str, model, requests: list[JudgeRequest]) -> list[Judgment]:
        encoder = self.encoder(member)
        results: dict[int, Judgment] = {}
        work: list[tuple[int, LikelihoodInputs]] = []
        for k, request in enumerate(requests):
            inputs = likelihood_inputs(encoder, request)
            if inputs is None:
                results[k] = blank_judgment(request)
            else:
                work.append((k, inputs))
        if work:
            logprobs = self._target_logprobs(model, _pad_id(encoder.tokenizer), [x for _, x in work])
            for (k, inputs), lps in zip(work, logprobs, strict=True):
                results[k] = likelihood_judgment(requests[k], inputs, lps, self.config)
        return [results[k] for k in range(len(requests))]

    @staticmethod
    def _target_logprobs(model, pad_id: int, items: list[LikelihoodInputs]) -> list[list[float]]:
        """Log P(target_t | context, target_<t) for every item, one batched forward pass."""
        keep = max(len(x.target_ids) for x in items) + 1
        ids, mask, positions = _left_pad([x.context_ids + x.target_ids for x in items], pad_id, _device(model))
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep)
        out = []
        for row, item in enumerate(items):
            n = len(item.target_ids)
            step = torch.log_softmax(logits.logits[row, keep - n - 1 : keep - 1].float(), dim=-1)
            target = torch.tensor(item.target_ids, device=step.device).unsqueeze(-1)
            out.append(step.gather(-1, target).squeeze(-1).tolist())
        return out
