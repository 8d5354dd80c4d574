"""Forward passes over a batch whose rows each carry their own member's LoRA adapter, with a KV cache.

Members on one base share every weight but their adapters, so one batch serves them all, each row through its
own adapter (``row_adapters``). Rows are left-padded; position ids restart at 0 on every row's first real token,
so padding changes nothing but floating-point rounding.

A batch may also share prefixes: rows with the same key (the same judge reading two answers to the same
instruction) whose token ids begin alike are computed as one prefix pass per group, its KV cache copied to
every row of the group, then one pass over what differs (``plan_prefixes``). The cut leaves at least the last
``tail`` tokens of every row to the second pass, so every logit a caller reads comes from it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sparta.backends.hf.packed_head import packed_head
from sparta.backends.hf.row_adapters import RowAdapters


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights are: every input goes there (never to a configured device string)."""
    return next(model.parameters()).device


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of shape (rows, longest), real tokens at the right edge; mask 1 on real tokens."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def _positions(mask: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """Position ids counting real tokens only, from ``start`` (per row; 0 when None)."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return positions if start is None else positions + start.unsqueeze(-1)


@functools.cache
def _cache_keyword(model_class: type) -> str:
    """The KV cache argument: ``cache`` in transformers 5.x, ``past_key_values`` in 4.x."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


class Running:
    """A batch in flight on one shared PeftModel: which adapter each row uses, its KV cache, which cached
    positions are real, and every row's next position id. Use it as a context manager (it hooks the model)."""

    def __init__(self, model) -> None:
        self.model = model
        self.device = model_device(model)
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)
        self.next_position = torch.zeros(0, dtype=torch.long, device=self.device)
        self.adapters: list[str] = []
        self._rows = RowAdapters(model)
        self._head = packed_head(model)

    def __enter__(self) -> Running:
        self._head.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._rows.release()
        finally:
            self._head.__exit__(None, None, None)

    def _use(self, adapters: Sequence[str]) -> None:
        self.adapters = list(adapters)
        self._rows.use(self.adapters)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, keep: int) -> torch.Tensor:
        """One pass extending the cache; the logits of its last ``keep`` positions, (rows, keep, vocab)."""
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=keep,
            **{_cache_keyword(type(self.model.get_base_model())): self.cache},
        )
        self.cache = out["cache"] if "cache" in out.keys() else out["past_key_values"]
        return out.logits[:, -keep:]

    def prefill(self, seqs: Sequence[Sequence[int]], adapters: Sequence[str], pad_id: int, keep: int) -> torch.Tensor:
        """One pass over every row; the logits of each row's last ``keep`` positions, (rows, keep, vocab)."""
        self._use(adapters)
        ids, self.mask = left_pad(seqs, pad_id, self.device)
        logits = self._forward(ids, self.mask, _positions(self.mask), keep)
        self.next_position = self.mask.sum(-1)
        return logits

    def prefill_shared(self, plan: PrefixPlan, adapters: Sequence[str], pad_id: int, keep: int) -> torch.Tensor:
        """As :meth:`prefill`, with each group's prefix computed once (the rows of a group share their adapter)."""
        group_adapters = [""] * len(plan.prefixes)
        for row, group in enumerate(plan.group_of):
            group_adapters[group] = adapters[row]
        self._use(group_adapters)
        ids, prefix_mask = left_pad(plan.prefixes, pad_id, self.device)
        self._forward(ids, prefix_mask, _positions(prefix_mask), 1)
        index = torch.tensor(plan.group_of, dtype=torch.long, device=self.device)
        self.cache.reorder_cache(index)  # every row gets a copy of its group's prefix
        start = prefix_mask.sum(-1)[index]
        self._use(adapters)
        suffix_ids, suffix_mask = left_pad(plan.suffixes, pad_id, self.device)
        self.mask = torch.cat([prefix_mask[index], suffix_mask], dim=-1)
        logits = self._forward(suffix_ids, self.mask, _positions(suffix_mask, start), keep)
        self.next_position = start + suffix_mask.sum(-1)
        return logits

    def keep_rows(self, rows: Sequence[int]) -> None:
        """Drop every row not in ``rows`` (finished ones), keeping the order given."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        self.cache.reorder_cache(index)
        self.mask = self.mask[index]
        self.next_position = self.next_position[index]
        self._use([self.adapters[i] for i in rows])

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; the next-token logits, (rows, vocab)."""
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=-1)
        logits = self._forward(tokens.unsqueeze(-1), self.mask, self.next_position.unsqueeze(-1), 1)
        self.next_position = self.next_position + 1
        return logits[:, -1]


@dataclass(frozen=True)
class PrefixPlan:
    """Rows cut into a prefix shared within their group and a suffix of their own."""

    prefixes: list[list[int]]
    group_of: list[int]
    suffixes: list[list[int]]

    @property
    def saved_tokens(self) -> int:
        """Tokens the prefix pass spares: each group's prefix is computed once instead of once per row."""
        return sum(len(self.prefixes[g]) for g in self.group_of) - sum(len(p) for p in self.prefixes)


def _common_length(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    length = min(len(s) for s in seqs)
    for seq in seqs[1:]:
        length = next((i for i in range(length) if seq[i] != first[i]), length)
    return length


def plan_prefixes(seqs: Sequence[Sequence[int]], keys: Sequence[Hashable], tails: Sequence[int]) -> PrefixPlan | None:
    """Group rows by key, cut each group at its common prefix but before any row's last ``tails[row]`` tokens.

    None when no group has two rows or some row would keep no prefix: one plain pass is then as cheap.
    """
    groups: dict[Hashable, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    if all(len(rows) < 2 for rows in groups.values()):
        return None
    prefixes, group_of, suffixes = [], [0] * len(seqs), [[] for _ in seqs]
    for rows in groups.values():
        cut = min(_common_length([seqs[r] for r in rows]), *(len(seqs[r]) - tails[r] for r in rows))
        if cut < 1:
            return None
        for row in rows:
            group_of[row] = len(prefixes)
            suffixes[row] = list(seqs[row][cut:])
        prefixes.append(list(seqs[rows[0]][:cut]))
    return PrefixPlan(prefixes, group_of, suffixes)
