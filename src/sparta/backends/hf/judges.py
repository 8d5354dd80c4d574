"""Judges on the Hugging Face engine: batched forward passes over the token ids ``sparta.backends.judging`` builds.

Every pool member scores responses 1..10 as itself (its adapter, tokenizer, chat template, system prompt).
Three ways to read a score out of a language model, chosen by ``judge.type``:

- ``generate``   the paper's pointwise judge: the judge writes ``{"score": N}`` (greedy) and the reply is parsed;
                 an unreadable reply is a failed judgment (excluded and counted, never defaulted);
- ``logprob``    the same prompt, pre-filled up to the score: the expected score under the judge's renormalised
                 next-token distribution over 1..10; one forward pass, never fails;
- ``likelihood`` no prompt at all: the judge's own geometric-mean probability of the response tokens as an
                 answer to the instruction, mapped onto 1..10. Small models judge far better this way.

What is scored and how raw numbers become a judgment live in ``sparta.backends.judging`` (any engine); this
module only computes. Every judge of a chunk shares its batches (each row through its judge's adapter,
``forward.Running``), of up to ``judge.batch_size`` rows of similar length, left-padded with position ids restarting
on every row; output order follows input order. The two requests of a judge on one match read the same prompt up
to the response (logprob, generate) or the same context (likelihood): they share a batch, and that prefix is
computed once and its KV cache reused (``forward.plan_prefixes``). What every request of a judge begins with (its
chat template and system prompt, and the rubric before the instruction) is computed once per judge and kept until
its adapter changes (``forward.ContextCache``). Logprob and likelihood judges, which need one pass and no decoding,
pack a batch instead (``forward.pack_rows``): every judge's sequences side by side, each match's prefix once, no
padding between them, in as many rows as costs least. See docs/judges.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from sparta.backends.base import Progress
from sparta.backends.hf.answer_logps import DIGEST_FIELD, LOGP_FIELD, answer_digest
from sparta.backends.hf.decoding import DecodeRow, decode
from sparta.backends.hf.forward import (
    CachedContext,
    ContextCache,
    Packing,
    PrefixPlan,
    Running,
    common_length,
    pack_rows,
    plan_prefixes,
)
from sparta.backends.hf.reference import packs
from sparta.backends.hf.row_adapters import RowAdapters
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
    likelihood_score,
    logprob_inputs,
    logprob_judgment,
    member_score_tokens,
    repeated_ngram_mask,
)
from sparta.config import JudgeConfig
from sparta.records import Instruction, JudgeRequest, Judgment, Response

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool

__all__ = [
    "GenerateJudge",
    "Judge",
    "LikelihoodJudge",
    "LogprobJudge",
    "likelihood_score",
    "repeated_ngram_mask",
    "turn_end_id",
]


def _quiet(_: int) -> None:
    return None


class Judge(Protocol):
    """Scores each request 1..10 as ``request.judge`` sees it; one judgment per request, in order."""

    def score(self, requests: Sequence[JudgeRequest], progress: Progress = _quiet) -> list[Judgment]: ...


JudgeFactory = Callable[["ModelPool", JudgeConfig], Judge]


# --------------------------------------------------------------------------------------------- shared machinery


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has neither a pad nor an eos token")
    return int(pad)


def encoder_for(pool: ModelPool, member: str, judge: JudgeConfig) -> JudgeEncoder:
    """``member`` as a judge: its tokenizer, chat template and system prompt."""
    return JudgeEncoder(pool.member_config(member), pool.tokenizer(member), judge)


def turn_end_id(pool: ModelPool, member: str) -> int:
    """The token that closes an assistant turn in ``member``'s chat template (``<|im_end|>``, ``<|eot_id|>``...)."""
    return encoder_for(pool, member, JudgeConfig()).turn_end


@dataclass(frozen=True)
class _Row:
    """One request as a judge reads it: the ids of one pass, how many final positions' logits it needs, and what
    the judge reads its score with (``inputs``)."""

    index: int
    judge: str
    ids: list[int]
    tail: int
    share: Hashable
    inputs: Any = None


_Prepared = tuple[list[CachedContext | None], list[list[int]], PrefixPlan | None]
"""Each row's cached context, the ids that follow it, and the plan of shared prefixes over those."""

_PROBES = (("Name a colour.", "Red."), ("Say yes.", "Yes."))
"""Two requests that differ from their first word: what a judge's rows of both begin with is its header."""


def _probe_requests(judge: str) -> list[JudgeRequest]:
    return [
        JudgeRequest(judge, Instruction(id=f"probe-{k}", text=text), Response(f"probe-{k}", "probe", answer))
        for k, (text, answer) in enumerate(_PROBES)
    ]


def _batches(rows: Sequence[_Row], base_of: dict[str, int], batch_size: int) -> list[list[_Row]]:
    """Batches of up to ``batch_size`` rows on one base: rows that may share a prefix stay together, groups of
    similar length go together, and within a batch rows are grouped by judge (one adapter per slice of rows)."""
    groups: dict[Hashable, list[_Row]] = {}
    for row in rows:
        groups.setdefault((base_of[row.judge], row.share), []).append(row)
    ordered = sorted(groups.values(), key=lambda g: (base_of[g[0].judge], max(len(r.ids) for r in g), g[0].index))
    batches: list[list[_Row]] = []
    for group in ordered:
        last = batches[-1] if batches else None
        same_base = last is not None and base_of[last[0].judge] == base_of[group[0].judge]
        if same_base and len(last) + len(group) <= batch_size:
            last.extend(group)
        else:
            batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    judge_order = {judge: k for k, judge in enumerate(base_of)}
    return [sorted(batch, key=lambda r: judge_order[r.judge]) for batch in batches]


class _BatchedJudge:
    """Turns requests into rows (``_rows``), runs mixed-judge batches (``_score_batch``), restores request order.

    A batch is computed as shared prefixes plus suffixes (a second pass) when that spares at least
    ``min_shared_fraction`` of its tokens and ``min_shared_work`` parameter x tokens, else in one pass. Measured on
    SmolLM2 (benchmarks/README.md) the split is faster; on a model so small that a token costs less than the pass's
    fixed overhead (the tiny test models) it is slower, hence the second bound.
    """

    min_shared_fraction = 0.1
    min_shared_work = 1e9

    def __init__(self, pool: ModelPool, judge: JudgeConfig) -> None:
        self.pool = pool
        self.config = judge
        self._encoders: dict[str, JudgeEncoder] = {}
        self._sizes: dict[str, int] = {}
        self._headers: dict[str, list[int]] = {}
        self.contexts: ContextCache | None = ContextCache()
        """Each judge's header, computed once per adapter state; None: every row computed whole."""
        self.packing = True
        """Logprob and likelihood batches packed into one pass (:meth:`_tails`); False: padded rows."""
        self.row_tokens = 0
        """Tokens of every row scored so far, each row counted whole."""
        self.spared_tokens = 0
        """Of those, the tokens not computed again thanks to shared prefixes and cached headers."""

    def encoder(self, member: str) -> JudgeEncoder:
        if member not in self._encoders:
            self._encoders[member] = encoder_for(self.pool, member, self.config)
        return self._encoders[member]

    def score(self, requests: Sequence[JudgeRequest], progress: Progress = _quiet) -> list[Judgment]:
        results: list[Judgment | None] = [None] * len(requests)
        rows = []
        for index, request in enumerate(requests):
            row_or_judgment = self._row(index, request)
            if isinstance(row_or_judgment, Judgment):
                results[index] = row_or_judgment
                progress(1)
            else:
                rows.append(row_or_judgment)
        base_of = {member: k for k, (_, _, members) in enumerate(self.pool.bases()) for member in members}
        for batch in _batches(rows, base_of, self.config.batch_size):
            model = self._model_of(batch[0].judge)
            model.eval()
            with torch.inference_mode():
                judged = self._score_batch(model, batch, [requests[r.index] for r in batch])
            for row, judgment in zip(batch, judged, strict=True):
                results[row.index] = judgment
            progress(len(batch))
        return [j for j in results if j is not None]

    def _model_of(self, member: str):
        """The shared model ``member`` judges with (its adapter not made active)."""
        return next(model for _, model, members in self.pool.bases() if member in members)

    def header(self, member: str) -> list[int]:
        """The ids every row of ``member`` as a judge begins with (template, system prompt, any rubric before the
        instruction): what two probe requests' rows have in common, found once."""
        if member not in self._headers:
            rows = [self._row(0, request) for request in _probe_requests(member)]
            ids = [row.ids for row in rows if isinstance(row, _Row)]
            self._headers[member] = ids[0][: common_length(ids)] if len(ids) == 2 else []
        return self._headers[member]

    def _contexts(self, model, batch: Sequence[_Row]) -> list[CachedContext | None]:
        """Each row's cached header; None for a row that does not begin with it or would keep too little after
        it, and for every row of a match where one such row is (the rows of a match share their prefix)."""
        if self.contexts is None:
            return [None] * len(batch)
        fits = {}
        for row in batch:
            header = self.header(row.judge)
            ok = 0 < len(header) <= len(row.ids) - row.tail and row.ids[: len(header)] == header
            fits[row.judge, row.share] = fits.get((row.judge, row.share), True) and ok
        found = self.contexts.get(model, {judge: self.header(judge) for judge, _ in fits})
        return [found[row.judge] if fits[row.judge, row.share] else None for row in batch]

    def _prepare(self, model, batch: Sequence[_Row]) -> _Prepared:
        """Each row's context, the ids that follow it, and the plan of shared prefixes over those (or None)."""
        contexts = self._contexts(model, batch)
        seqs = [row.ids[len(c.ids) if c else 0 :] for row, c in zip(batch, contexts)]
        self.row_tokens += sum(len(row.ids) for row in batch)
        self.spared_tokens += sum(len(row.ids) - len(seq) for row, seq in zip(batch, seqs))
        return contexts, seqs, self._plan(batch, seqs)

    def _plan(self, batch: Sequence[_Row], seqs: Sequence[list[int]]) -> PrefixPlan | None:
        plan = plan_prefixes(seqs, [(r.judge, r.share) for r in batch], [r.tail for r in batch])
        total = sum(len(seq) for seq in seqs)
        if plan is None or plan.saved_tokens < self.min_shared_fraction * total:
            return None
        if plan.saved_tokens * self._parameters(batch[0].judge) < self.min_shared_work:
            return None
        self.spared_tokens += plan.saved_tokens
        return plan

    def _parameters(self, member: str) -> int:
        """Parameters of the base ``member`` judges with (adapters left out): the work one token costs."""
        if member not in self._sizes:
            model = self._model_of(member)
            self._sizes[member] = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)
        return self._sizes[member]

    def _tails(self, model, batch: Sequence[_Row]) -> torch.Tensor:
        """The logits of every row's last ``max(tail)`` positions, (rows, max tail, vocab): packed in one pass
        where the model allows (:func:`forward.pack_rows`), else in a pass per prefix and suffix, padded."""
        keep = max(r.tail for r in batch)
        pad = _pad_id(self.encoder(batch[0].judge).tokenizer)
        adapters = [r.judge for r in batch]
        pack = self._pack(model, batch)
        with Running(model) as running:
            if pack is not None:
                return running.prefill_packed(pack, pad, keep)
            contexts, seqs, plan = self._prepare(model, batch)
            return running.prefill_planned(seqs, adapters, pad, keep, plan, contexts)

    def _pack(self, model, batch: Sequence[_Row]) -> Packing | None:
        """The batch packed into as few rows as cost least, each judge's tokens through its adapter and after its
        header, each match's prefix once (no pass to add: shared whenever rows have one in common); None when
        packing is off, the model cannot take a block mask (``reference.packs``) or its LoRA layers are not plain."""
        if not self.packing or not packs(model.get_base_model()) or not RowAdapters(model).routes_tokens():
            return None
        contexts = self._contexts(model, batch)
        seqs = [row.ids[len(c.ids) if c else 0 :] for row, c in zip(batch, contexts)]
        keys = [(r.judge, r.share) for r in batch]
        config = model.get_base_model().config.get_text_config()
        token_pairs = self._parameters(batch[0].judge) / (2 * config.hidden_size * config.num_hidden_layers)
        pack = pack_rows(seqs, [r.judge for r in batch], keys, [r.tail for r in batch], contexts, token_pairs)
        if pack is not None:
            self.row_tokens += sum(len(row.ids) for row in batch)
            self.spared_tokens += sum(len(row.ids) for row in batch) - int((pack.owners >= 0).sum())
        return pack

    def _row(self, index: int, request: JudgeRequest) -> _Row | Judgment:
        raise NotImplementedError

    def _score_batch(self, model, batch: list[_Row], requests: list[JudgeRequest]) -> list[Judgment]:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- generate


class GenerateJudge(_BatchedJudge):
    """The judge writes its verdict (greedy, ``judge.max_new_tokens``); ``parse_score`` reads it."""

    def _row(self, index: int, request: JudgeRequest) -> _Row:
        inputs = generate_inputs(self.encoder(request.judge), request)
        return _Row(index, request.judge, inputs.prompt_ids, 1, request.instruction.id)

    def _score_batch(self, model, batch: list[_Row], requests: list[JudgeRequest]) -> list[Judgment]:
        encoders = [self.encoder(r.judge) for r in batch]
        contexts, seqs, plan = self._prepare(model, batch)
        rows = [
            DecodeRow(
                prompt_ids=seq,
                adapter=r.judge,
                temperature=0.0,
                top_p=1.0,
                max_new_tokens=self.config.max_new_tokens,
                stop_ids=frozenset(encoder.stop_ids),
                seed=0,
            )
            for r, seq, encoder in zip(batch, seqs, encoders)
        ]
        replies = decode(model, rows, _pad_id(encoders[0].tokenizer), plan, contexts)
        judged = []
        for request, row, reply, encoder in zip(requests, rows, replies, encoders):
            kept = reply[:-1] if reply and reply[-1] in row.stop_ids else reply
            judged.append(generate_judgment(request, encoder.tokenizer.decode(kept, skip_special_tokens=True)))
        return judged


# --------------------------------------------------------------------------------------------- logprob


class LogprobJudge(_BatchedJudge):
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

    def _row(self, index: int, request: JudgeRequest) -> _Row:
        tokens = self.tokens(request.judge)
        inputs = logprob_inputs(self.encoder(request.judge), tokens, request)
        ids = inputs.after_one_ids or inputs.prompt_ids
        return _Row(index, request.judge, ids, 2 if tokens.split_ten else 1, request.instruction.id)

    def _score_batch(self, model, batch: list[_Row], requests: list[JudgeRequest]) -> list[Judgment]:
        logits = self._tails(model, batch)
        judged = []
        for b, (row, request) in enumerate(zip(batch, requests)):
            probs = torch.softmax(logits[b, -row.tail :].float(), dim=-1).cpu()
            judged.append(logprob_judgment(request, self._reading(row.judge, self.tokens(row.judge), probs)))
        return judged

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


# --------------------------------------------------------------------------------------------- likelihood


class LikelihoodJudge(_BatchedJudge):
    """The judge's length-normalised likelihood of the response (plus the end of its turn) after the instruction.

    An empty (or blank) response scores 1 without a forward pass: a valid, very bad answer. Where the logits are
    float32, as the reference pass's are, a judgment also carries the answer's summed log-probability as DPO scores
    it, for the judge's own reference pass (``answer_logps``): the turn end and what the template writes after it
    (a newline in ChatML, read off the last position's logits, already computed).
    """

    def _row(self, index: int, request: JudgeRequest) -> _Row | Judgment:
        inputs = likelihood_inputs(self.encoder(request.judge), request)
        if inputs is None:
            return blank_judgment(request)
        ids = inputs.context_ids + inputs.target_ids
        return _Row(index, request.judge, ids, len(inputs.target_ids) + 1, request.instruction.id, inputs)

    def _score_batch(self, model, batch: list[_Row], requests: list[JudgeRequest]) -> list[Judgment]:
        """Read log P(target_t | context, target_<t) of every row off one batch's logits."""
        logits = self._tails(model, batch)
        keep = logits.shape[1]
        judged = []
        for b, (row, request) in enumerate(zip(batch, requests)):
            inputs: LikelihoodInputs = row.inputs
            n = len(inputs.target_ids)
            step = torch.log_softmax(logits[b, keep - n - 1 : keep].float(), dim=-1)
            target = torch.tensor(inputs.target_ids, device=step.device).unsqueeze(-1)
            logprobs = step[:-1].gather(-1, target).squeeze(-1).tolist()
            reference = self._reference(row.judge, inputs, logprobs, step[-1]) if logits.dtype == torch.float32 else {}
            judged.append(likelihood_judgment(request, inputs, logprobs, self.config, reference))
        return judged

    def _reference(
        self, judge: str, inputs: LikelihoodInputs, logprobs: list[float], after: torch.Tensor
    ) -> dict[str, Any]:
        """The answer's log-probability over the ids DPO trains on, and their digest; none for an answer cut here
        (DPO trains on all of it) or a template that writes more than one token after the turn end."""
        if inputs.cut:
            return {}
        answer, logp = list(inputs.target_ids), math.fsum(logprobs)
        if not inputs.truncated:
            tail = self.encoder(judge).turn_tail
            if len(tail) > 1:
                return {}
            answer += tail
            logp += sum(float(after[token]) for token in tail)
        return {LOGP_FIELD: logp, DIGEST_FIELD: answer_digest(inputs.context_ids, answer)}
