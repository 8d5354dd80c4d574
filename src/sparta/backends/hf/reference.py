"""DPO's reference log-probabilities: each answer's log-probability under the member as it is before its first update.

SPARTA's reference policy is the member at the start of the round (DESIGN section 1, step 8), so these numbers are
computed once, before the first optimizer step, and handed to TRL's ``DPOTrainer`` as the ``ref_chosen_logps`` and
``ref_rejected_logps`` columns it reads with ``precompute_ref_log_probs``. We compute them here rather than with
TRL 1.16's own reference pass, which costs about as much as the optimizer steps' forward passes (measured in
benchmarks/README.md) because it:

- runs prompt + chosen and prompt + rejected as two padded rows, so every prompt twice; here each prompt runs once
  and both answers continue from its KV cache, and under SDPA attention a batch's prompts are packed into one row
  and its answers into another, so nothing is padded (a block mask keeps every sequence to itself);
- runs again, in every prompt, what all of them begin with (the chat template and the member's system prompt: about
  20 of the 45 tokens of a demo prompt); here that header is computed once per pass and every packed batch's prompts
  continue from its KV cache (:func:`prompt_header`);
- scores every position off CUDA (prompt and padding too) and also computes entropy and top-1 statistics; here the
  output head runs on answer tokens only and computes the log-softmax alone;
- hashes the whole model (the base and every member's adapter) to name a dataset cache file it writes per member.

The head is applied in float32 to the backbone's hidden states, vocabulary slice by slice, as TRL's fused head
accumulates its logits, so these numbers and TRL's log-probabilities of the same policy agree up to summation order.
Models whose logits are more than ``head(hidden)`` (soft-capping, scaling) are left to TRL's own pass.
:func:`answer_states` also serves the optimizer steps, with gradients (``policy_pass``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sparta.backends.hf.dpo_data import PairTokens
from sparta.backends.hf.forward import CachedContext, cache_keyword, common_length, contexts_cache, plain_layers

HEAD_SLICE = 16384
"""Vocabulary rows of the output head turned into float32 logits at once: bounds memory at (answer tokens x this)."""

_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)
"""Config fields of architectures whose logits are transformed after the output head (Gemma 2, Cohere, Granite...)."""


def plain_head(model: torch.nn.Module) -> bool:
    """Whether the model's logits are its output head applied to its backbone's last hidden states, nothing more."""
    text_config = model.config.get_text_config()
    has_backbone = getattr(model, "base_model", model) is not model
    return has_backbone and all(getattr(text_config, name, None) is None for name in _LOGIT_TRANSFORMS)


def _padded(seqs: Sequence[Sequence[int]], pad_id: int, left: bool, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(ids, mask) of shape (rows, longest); padding on the left or the right."""
    width = max(len(seq) for seq in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        where = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, where] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, where] = 1
    return ids.to(device), mask.to(device)


def target_logps(
    states: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module, slice_rows: int = HEAD_SLICE
) -> torch.Tensor:
    """The log-softmax of ``head(states)`` at ``targets``, in float32, ``slice_rows`` vocabulary rows at a time."""
    hidden = states.float()
    weight, bias = head.weight, getattr(head, "bias", None)
    normaliser = torch.full((len(hidden),), -torch.inf, device=hidden.device)
    chosen = torch.zeros(len(hidden), device=hidden.device)
    for offset in range(0, weight.shape[0], slice_rows):
        logits = hidden @ weight[offset : offset + slice_rows].float().T
        if bias is not None:
            logits += bias[offset : offset + slice_rows].float()
        normaliser = torch.logaddexp(normaliser, torch.logsumexp(logits, dim=-1))
        local = targets - offset
        inside = (local >= 0) & (local < logits.shape[1])
        picked = logits.gather(1, local.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
        chosen = torch.where(inside, picked, chosen)
    return chosen - normaliser


def answer_states(
    model: torch.nn.Module, batch: Sequence[PairTokens], pad_id: int, header: CachedContext | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each answer token's predicting state, each prompt run once and both its answers continuing from its KV cache.

    Returns (states, targets, valid): ``valid`` is (2 x pairs, longest answer), True on real answer tokens, rows in
    the order chosen, rejected of each pair; ``states`` (valid tokens, hidden) and ``targets`` (valid tokens) list
    the real tokens row by row. Gradients flow through the prompt's cache when the caller records them. Under
    PyTorch's SDPA attention, sequences that fit ``PACKED_ROW`` are packed (:func:`_packed_answer_states`), their
    prompts continuing from ``header`` when one is given (:func:`prompt_header`); otherwise they are padded and
    run whole.
    """
    if any(not tokens.prompt_ids for tokens in batch):
        raise ValueError("a preference pair without prompt tokens has no position to predict its answers from")
    if packs(model) and _fits_one_row(batch):
        return _packed_answer_states(model, batch, header)
    return _padded_answer_states(model, batch, pad_id)


def prompt_header(model: torch.nn.Module, tokens: Sequence[PairTokens]) -> CachedContext | None:
    """The ids every prompt begins with, run once through the backbone: its keys and values, for packed batches to
    continue from. Each prompt keeps at least its last token (its state predicts the first answer token). None when
    the prompts share nothing, a single pair would gain nothing, or the model packs no sequences or keeps no plain
    per-layer cache (sliding windows, recurrent state)."""
    if len(tokens) < 2 or not packs(model):
        return None
    prompts = [t.prompt_ids for t in tokens]
    length = min(common_length(prompts), min(map(len, prompts)) - 1)
    if length < 1:
        return None
    backbone = model.base_model
    ids = torch.tensor([prompts[0][:length]], device=model.get_output_embeddings().weight.device)
    cache = backbone(input_ids=ids, use_cache=True)[cache_keyword(type(backbone))]
    if not plain_layers(cache):
        return None
    return CachedContext(tuple(prompts[0][:length]), tuple((la.keys[0], la.values[0]) for la in cache.layers))


PACKED_ROW = 1024
"""The most tokens packed into one row. The block mask and the attention over it grow with the square of the row's
length, where padded rows grow with the square of the longest sequence: short sequences gain (no padding runs
through the model), long ones would lose, so a batch with more prompt or answer tokens than this is padded."""


def _fits_one_row(batch: Sequence[PairTokens]) -> bool:
    prompts = sum(len(tokens.prompt_ids) for tokens in batch)
    answers = sum(len(tokens.chosen_ids) + len(tokens.rejected_ids) for tokens in batch)
    return max(prompts, answers) <= PACKED_ROW


def packs(model: torch.nn.Module) -> bool:
    """Whether sequences can be packed into one row: SDPA attention (it reads a boolean mask as given) and no
    sliding window (the block mask below ignores one)."""
    config = model.config.get_text_config()
    return getattr(config, "_attn_implementation", None) == "sdpa" and not getattr(config, "sliding_window", None)


def _packed_answer_states(
    model: torch.nn.Module, batch: Sequence[PairTokens], header: CachedContext | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`answer_states` without padding: every prompt in one row, then every answer in another.

    Each prompt token sees the header and its own prompt's earlier tokens; each answer token the header, its prompt
    and its own earlier tokens (a boolean block mask, True where attention is allowed); position ids restart with
    every sequence, after the header.
    """
    backbone, device = model.base_model, model.get_output_embeddings().weight.device
    keyword = cache_keyword(type(backbone))
    shared = len(header.ids) if header else 0
    past = {keyword: contexts_cache([[header]], backbone.config)} if header else {}
    prompts = [tokens.prompt_ids[shared:] for tokens in batch]
    answers = [ids for tokens in batch for ids in (tokens.chosen_ids, tokens.rejected_ids)]
    fed = [ids[:-1] for ids in answers]

    def packed(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, sequence index, position within the sequence) of every token, sequences one after another."""
        ids = torch.tensor([i for seq in seqs for i in seq], dtype=torch.long, device=device)
        lengths = torch.tensor([len(seq) for seq in seqs], device=device)
        owner = torch.repeat_interleave(torch.arange(len(seqs), device=device), lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        return ids, owner, torch.arange(len(ids), device=device) - starts[owner]

    prompt_ids, prompt_of, prompt_pos = packed(prompts)
    causal = (prompt_of[:, None] == prompt_of[None, :]) & (prompt_pos[None, :] <= prompt_pos[:, None])
    sees_header = torch.ones((len(prompt_ids), shared), dtype=torch.bool, device=device)
    out = backbone(
        input_ids=prompt_ids[None],
        attention_mask=torch.cat([sees_header, causal], dim=1)[None, None],
        position_ids=(prompt_pos + shared)[None],
        use_cache=True,
        **past,
    )
    hidden = out.last_hidden_state[0]
    prompt_lengths = [len(p) for p in prompts]
    # which packed state predicts each answer token, answer by answer: its prompt's last state, then its own tokens
    index, prompt_end, fed_start = [], 0, len(prompt_ids)
    for a, seq in enumerate(fed):
        if a % 2 == 0:
            prompt_end += prompt_lengths[a // 2]
        index += [prompt_end - 1, *range(fed_start, fed_start + len(seq))]
        fed_start += len(seq)
    if sum(map(len, fed)) > 0:
        fed_ids, answer_of, fed_pos = packed(fed)
        pair_of = answer_of // 2
        sees_prompt = pair_of[:, None] == prompt_of[None, :]
        sees_answer = (answer_of[:, None] == answer_of[None, :]) & (fed_pos[None, :] <= fed_pos[:, None])
        sees_header = torch.ones((len(fed_ids), shared), dtype=torch.bool, device=device)
        mask = torch.cat([sees_header, sees_prompt, sees_answer], dim=1)
        positions = fed_pos + shared + torch.tensor(prompt_lengths, device=device)[pair_of]
        continued = backbone(
            input_ids=fed_ids[None],
            attention_mask=mask[None, None],
            position_ids=positions[None],
            **{keyword: out[keyword]},
        )
        hidden = torch.cat([hidden, continued.last_hidden_state[0]])
    targets, valid = _padded(answers, 0, left=False, device=device)
    valid = valid.bool()
    return hidden[torch.tensor(index, device=device)], targets[valid], valid


def _padded_answer_states(
    model: torch.nn.Module, batch: Sequence[PairTokens], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`answer_states` with prompts left-padded and answers right-padded (any attention implementation)."""
    backbone, head = model.base_model, model.get_output_embeddings()
    device, keyword = head.weight.device, cache_keyword(type(model.base_model))
    prompt_ids, prompt_mask = _padded([t.prompt_ids for t in batch], pad_id, left=True, device=device)
    prompt_positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = backbone(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=prompt_positions, use_cache=True)
    answers = [ids for tokens in batch for ids in (tokens.chosen_ids, tokens.rejected_ids)]
    # the prompt's last state predicts each answer's first token; each fed answer token predicts the next one
    states = out.last_hidden_state[:, -1:].repeat_interleave(2, dim=0)
    fed = [ids[:-1] for ids in answers]
    if max(map(len, fed)) > 0:
        cache = out[keyword]
        cache.batch_repeat_interleave(2)
        fed_ids, fed_mask = _padded(fed, pad_id, left=False, device=device)
        start = prompt_mask.sum(-1).repeat_interleave(2)
        positions = start.unsqueeze(1) + torch.arange(fed_ids.shape[1], device=device)
        mask = torch.cat([prompt_mask.repeat_interleave(2, dim=0), fed_mask], dim=-1)
        hidden = backbone(input_ids=fed_ids, attention_mask=mask, position_ids=positions, **{keyword: cache})
        states = torch.cat([states, hidden.last_hidden_state], dim=1)
    targets, valid = _padded(answers, 0, left=False, device=device)
    valid = valid.bool()
    return states[:, : targets.shape[1]][valid], targets[valid], valid


def _batch_logps(
    model: torch.nn.Module, batch: Sequence[PairTokens], pad_id: int, header: CachedContext | None
) -> torch.Tensor:
    """(pairs, 2): the summed log-probs of each pair's chosen and rejected answer."""
    states, targets, valid = answer_states(model, batch, pad_id, header)
    per_token = target_logps(states, targets, model.get_output_embeddings())
    sums = torch.zeros(len(valid), device=per_token.device).index_add_(0, valid.nonzero()[:, 0], per_token)
    return sums.view(len(batch), 2)


def reference_logps(
    model: torch.nn.Module, tokens: Sequence[PairTokens], pad_id: int, batch_size: int
) -> tuple[list[float], list[float]]:
    """Each pair's chosen and rejected log-probability under ``model`` as it is now, in the order given.

    ``model`` is a transformers causal LM with a plain output head (:func:`plain_head`) and the member's adapter
    active. Pairs run in batches of ``batch_size``, sorted by length so that little is padded, after the prompts'
    common header (:func:`prompt_header`); in eval mode, without gradients. Returns (chosen, rejected).
    """

    def length(index: int) -> int:
        pair = tokens[index]
        return len(pair.prompt_ids) + max(len(pair.chosen_ids), len(pair.rejected_ids))

    order = sorted(range(len(tokens)), key=length)
    chosen, rejected = [0.0] * len(tokens), [0.0] * len(tokens)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            header = prompt_header(model, tokens)
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                values = _batch_logps(model, [tokens[i] for i in indices], pad_id, header).tolist()
                for index, (chosen_logp, rejected_logp) in zip(indices, values):
                    chosen[index], rejected[index] = chosen_logp, rejected_logp
    finally:
        model.train(was_training)
    return chosen, rejected
