"""Forward passes over a batch whose rows each carry their own member's LoRA adapter, with a KV cache.

Members on one base share every weight but their adapters, so one batch serves them all, each row through its
own adapter (``row_adapters``). Rows are left-padded; position ids restart at 0 on every row's first real token,
so padding changes nothing but floating-point rounding.

A batch may also share prefixes: rows with the same key (the same judge reading two answers to the same
instruction) whose token ids begin alike are computed as one prefix pass per group, its KV cache copied to
every row of the group, then one pass over what differs (``plan_prefixes``). The cut leaves at least the last
``tail`` tokens of every row to the second pass, so every logit a caller reads comes from it.

Tokens that begin many batches' rows (a judge's system prompt and rubric) can be computed once for an adapter and
kept (:class:`ContextCache`); a batch then starts each row after its context (:meth:`Running.start_after`).

A pass that needs no decoding afterwards can instead pack its sequences (:func:`pack_rows`,
:meth:`Running.prefill_packed`): sequences of several adapters side by side in few rows, each token through its
own adapter, each group's prefix once, a block mask keeping every sequence to its own context, prefix and tokens.
One pass, no padding between sequences; the number of rows trades padding against attention over masked pairs.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

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
def cache_keyword(model_class: type) -> str:
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

    def _extend(self, mask: torch.Tensor) -> torch.Tensor:
        """Extend the cache's mask by ``mask``; returns the new positions' first position ids (0 on an empty cache)."""
        if self.cache is None:
            self.mask = mask[:, :0]
            self.next_position = torch.zeros(len(mask), dtype=torch.long, device=self.device)
        self.mask = torch.cat([self.mask, mask], dim=-1)
        return self.next_position

    def start_after(self, contexts: Sequence[CachedContext | None]) -> None:
        """Begin each row after its context (None: after nothing), as if its tokens had been prefilled here: their
        keys and values, left-padded to the longest, become the cache the next pass extends."""
        cache = contexts_cache([[c] if c else [] for c in contexts], self.model.get_base_model().config)
        if cache is None:
            return
        self.cache, width = cache, max(len(c.ids) for c in contexts if c)
        lengths = torch.tensor([len(c.ids) if c else 0 for c in contexts], dtype=torch.long, device=self.device)
        self.mask = (torch.arange(width, device=self.device) >= width - lengths.unsqueeze(-1)).long()
        self.next_position = lengths

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, keep: int) -> torch.Tensor:
        """One pass extending the cache; the logits of its last ``keep`` positions, (rows, keep, vocab)."""
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=keep,
            **{cache_keyword(type(self.model.get_base_model())): self.cache},
        )
        self.cache = out["cache"] if "cache" in out.keys() else out["past_key_values"]
        return out.logits[:, -keep:]

    def prefill(self, seqs: Sequence[Sequence[int]], adapters: Sequence[str], pad_id: int, keep: int) -> torch.Tensor:
        """One pass over every row; the logits of each row's last ``keep`` positions, (rows, keep, vocab)."""
        self._use(adapters)
        ids, mask = left_pad(seqs, pad_id, self.device)
        start = self._extend(mask)
        logits = self._forward(ids, self.mask, _positions(mask, start), keep)
        self.next_position = start + mask.sum(-1)
        return logits

    def prefill_shared(self, plan: PrefixPlan, adapters: Sequence[str], pad_id: int, keep: int) -> torch.Tensor:
        """As :meth:`prefill`, with each group's prefix computed once (the rows of a group share their adapter).
        After :meth:`start_after`, its contexts are those of the groups, one per prefix."""
        group_adapters = [""] * len(plan.prefixes)
        for row, group in enumerate(plan.group_of):
            group_adapters[group] = adapters[row]
        self._use(group_adapters)
        ids, prefix_mask = left_pad(plan.prefixes, pad_id, self.device)
        start = self._extend(prefix_mask)
        self._forward(ids, self.mask, _positions(prefix_mask, start), 1)
        index = torch.tensor(plan.group_of, dtype=torch.long, device=self.device)
        self.cache.reorder_cache(index)  # every row gets a copy of its group's prefix
        start = (start + prefix_mask.sum(-1))[index]
        self._use(adapters)
        suffix_ids, suffix_mask = left_pad(plan.suffixes, pad_id, self.device)
        self.mask = torch.cat([self.mask[index], suffix_mask], dim=-1)
        logits = self._forward(suffix_ids, self.mask, _positions(suffix_mask, start), keep)
        self.next_position = start + suffix_mask.sum(-1)
        return logits

    def prefill_planned(
        self,
        seqs: Sequence[Sequence[int]],
        adapters: Sequence[str],
        pad_id: int,
        keep: int,
        plan: PrefixPlan | None = None,
        contexts: Sequence[CachedContext | None] = (),
    ) -> torch.Tensor:
        """:meth:`prefill` (``plan`` None) or :meth:`prefill_shared` (``plan`` cut from ``seqs``), each row after its
        context (``seqs`` are then what follows it; the rows of a plan's group share theirs)."""
        if plan is None:
            self.start_after(contexts)
            return self.prefill(seqs, adapters, pad_id, keep)
        if contexts:
            first_row = {group: row for row, group in reversed(list(enumerate(plan.group_of)))}
            self.start_after([contexts[first_row[group]] for group in range(len(plan.prefixes))])
        return self.prefill_shared(plan, adapters, pad_id, keep)

    def prefill_packed(self, pack: Packing, pad_id: int, keep: int) -> torch.Tensor:
        """One pass over ``pack`` (:func:`pack_rows`), every token through its own adapter; the logits of every
        sequence's last ``keep`` positions, (sequences, keep, vocab). The batch cannot be continued (:meth:`step`)."""
        self._rows.use_tokens(pack.order, pack.owners.to(self.device))
        backbone = self.model.get_base_model().model
        cache = contexts_cache(pack.headers, backbone.config)
        hidden = backbone(
            input_ids=pack.ids.masked_fill(pack.owners < 0, pad_id).to(self.device),
            attention_mask=pack.attends[:, None].to(self.device),
            position_ids=pack.positions.to(self.device),
            use_cache=cache is not None,
            **({cache_keyword(type(backbone)): cache} if cache is not None else {}),
        ).last_hidden_state
        states = hidden.reshape(-1, hidden.shape[-1])[pack.last_positions(keep).to(self.device)]
        return self.model.get_output_embeddings()(states)

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


def common_length(seqs: Sequence[Sequence[int]]) -> int:
    """How many leading ids every sequence shares."""
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
        cut = min(common_length([seqs[r] for r in rows]), *(len(seqs[r]) - tails[r] for r in rows))
        if cut < 1:
            return None
        for row in rows:
            group_of[row] = len(prefixes)
            suffixes[row] = list(seqs[row][cut:])
        prefixes.append(list(seqs[rows[0]][:cut]))
    return PrefixPlan(prefixes, group_of, suffixes)


# --------------------------------------------------------------------------------------------- packed rows


def _cheapest_rows(sizes: Sequence[int], header: int, token_pairs: float) -> list[list[int]]:
    """Groups (of ``sizes`` tokens) spread over the rows that cost least: every row is as long as the longest,
    padding included, and attends over all of it, masked or not. A row of ``w`` tokens after a ``header`` costs
    ``w * token_pairs + w * (w + header)``, where ``token_pairs`` is how many (query, key) pairs of attention cost
    what one token's linear layers do (about parameters / (2 x hidden size x layers)). One row pads nothing but
    attends most; a row per group the reverse. Groups go longest first to the shortest row."""
    best: tuple[float, list[list[int]]] | None = None
    for count in range(1, len(sizes) + 1):
        rows: list[list[int]] = [[] for _ in range(count)]
        lengths = [0] * count
        for group in sorted(range(len(sizes)), key=lambda g: -sizes[g]):
            shortest = lengths.index(min(lengths))
            rows[shortest].append(group)
            lengths[shortest] += sizes[group]
        width = max(lengths)
        cost = count * width * (token_pairs + width + header)
        if best is None or cost < best[0]:
            best = (cost, [sorted(row) for row in rows if row])
    assert best is not None
    return best[1]


@dataclass(frozen=True)
class Packing:
    """Sequences of several adapters packed into rows: every group's shared prefix once, then the rest of each of
    its sequences, nothing padded between them. Each row's cache holds the contexts of the adapters it packs, side by
    side (``headers``; :func:`contexts_cache`).

    Per token, (rows, width): ``owners`` its adapter (an index into ``order``; -1 on padding), ``positions`` its
    position id (its adapter's context comes first). ``attends`` (rows, width, headers + width) is True where a
    token may attend: its adapter's context, its group's prefix up to itself, its own sequence up to itself (a
    padding token: itself). ``ends`` lists each sequence's tokens in reading order, as flat indices over rows x width.
    """

    ids: torch.Tensor
    owners: torch.Tensor
    positions: torch.Tensor
    attends: torch.Tensor
    order: list[str]
    headers: list[list[CachedContext]]
    ends: list[list[int]]

    def last_positions(self, keep: int) -> torch.Tensor:
        """(sequences, keep) flat indices of each sequence's last ``keep`` tokens, repeating its first when short."""
        rows = [end[-keep:] if len(end) >= keep else [end[0]] * (keep - len(end)) + end for end in self.ends]
        return torch.tensor(rows, dtype=torch.long)


def pack_rows(
    seqs: Sequence[Sequence[int]],
    adapters: Sequence[str],
    keys: Sequence[Hashable],
    tails: Sequence[int],
    contexts: Sequence[CachedContext | None],
    token_pairs: float,
) -> Packing | None:
    """Pack ``seqs``: those with the same key and adapter share the prefix they have in common, cut before any of
    their last ``tails`` tokens; each follows its adapter's context. None when an adapter's sequences follow
    different contexts. The groups are spread over as many rows as costs least (:func:`_cheapest_rows`)."""
    context_of: dict[str, CachedContext | None] = {}
    for adapter, context in zip(adapters, contexts):
        if context_of.setdefault(adapter, context) is not context:
            return None
    groups: dict[Hashable, list[int]] = {}
    for row, (adapter, key) in enumerate(zip(adapters, keys)):
        groups.setdefault((adapter, key), []).append(row)
    packed: list[list[tuple[int, int, list[int], str]]] = []  # per group: (group, sequence or -1, tokens, adapter)
    for number, ((adapter, _), members) in enumerate(groups.items()):
        cut = min(common_length([seqs[r] for r in members]), *(len(seqs[r]) - tails[r] for r in members))
        cut = max(cut, 0) if len(members) > 1 else 0
        segments = [(number, -1, list(seqs[members[0]][:cut]), adapter)]
        packed.append(segments + [(number, r, list(seqs[r][cut:]), adapter) for r in members])
    header = max((len(c.ids) for c in context_of.values() if c), default=0)
    sizes = [sum(len(tokens) for _, _, tokens, _ in segments) for segments in packed]
    rows = [[s for g in row for s in packed[g]] for row in _cheapest_rows(sizes, header, token_pairs)]
    order = list(dict.fromkeys(adapters))
    headers = [[context_of[a] for a in dict.fromkeys(a for *_, a in row) if context_of[a]] for row in rows]
    width = max(sum(len(tokens) for _, _, tokens, _ in row) for row in rows)
    head_width = max(sum(len(c.ids) for c in row) for row in headers)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    owners = torch.full((len(rows), width), -1, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    group = torch.full((len(rows), width), -1, dtype=torch.long)
    sequence = torch.full((len(rows), width), -1, dtype=torch.long)  # -1 on a prefix's tokens
    sees_header = torch.zeros((len(rows), width, head_width), dtype=torch.bool)
    ends: list[list[int]] = [[] for _ in seqs]
    for r, row in enumerate(rows):
        spans, at = {}, head_width - sum(len(c.ids) for c in headers[r])
        for context in headers[r]:
            spans[id(context)] = (at, at + len(context.ids))
            at += len(context.ids)
        at, prefix = 0, []
        for number, seq, tokens, adapter in row:
            context = context_of[adapter]
            here = slice(at, at + len(tokens))
            start = (len(context.ids) if context else 0) + (0 if seq < 0 else len(prefix))
            ids[r, here] = torch.tensor(tokens, dtype=torch.long)
            owners[r, here], group[r, here], sequence[r, here] = order.index(adapter), number, seq
            positions[r, here] = torch.arange(start, start + len(tokens))
            if context:
                sees_header[r, here, slice(*spans[id(context)])] = True
            where = list(range(r * width + at, r * width + at + len(tokens)))
            if seq < 0:
                prefix = where
            else:
                ends[seq] = prefix + where  # what the sequence reads, in order: its group's prefix, then its own
            at += len(tokens)
    padding = group < 0
    same_group = group[:, :, None] == group[:, None, :]
    earlier = positions[:, None, :] <= positions[:, :, None]
    visible = (sequence[:, None, :] < 0) | (sequence[:, None, :] == sequence[:, :, None])
    among = (same_group & earlier & visible & ~padding[:, None, :]) | torch.diag_embed(padding)
    return Packing(ids, owners, positions, torch.cat([sees_header, among], dim=-1), order, headers, ends)


# --------------------------------------------------------------------------------------------- cached contexts


@dataclass(frozen=True)
class CachedContext:
    """Tokens computed once through one adapter, and the keys and values they left in every layer's cache,
    each (key-value heads, tokens, head size)."""

    ids: tuple[int, ...]
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]


def contexts_cache(rows: Sequence[Sequence[CachedContext]], config: Any) -> DynamicCache | None:
    """Each row's contexts' keys and values side by side, rows left-padded to the longest: the cache a pass extends
    (the kept tensors are not changed). None when no row has a context."""
    width = max((sum(len(c.ids) for c in row) for row in rows), default=0)
    if width == 0:
        return None
    template = next(c for row in rows for c in row)
    cache = DynamicCache(config=config)
    for layer, (keys, values) in enumerate(template.layers):
        shape = (len(rows), keys.shape[0], width, keys.shape[2])
        row_keys, row_values = keys.new_zeros(shape), values.new_zeros(shape)
        for r, row in enumerate(rows):
            at = width - sum(len(c.ids) for c in row)
            for context in row:
                row_keys[r, :, at : at + len(context.ids)] = context.layers[layer][0]
                row_values[r, :, at : at + len(context.ids)] = context.layers[layer][1]
                at += len(context.ids)
        cache.update(row_keys, row_values, layer)
    return cache


def plain_layers(cache: Any) -> bool:
    """Whether every layer of the cache keeps every position's keys and values (no sliding window, no state)."""
    layers = getattr(cache, "layers", None)
    sliding = getattr(cache, "is_sliding", None) or [False]
    return (
        bool(layers) and not any(sliding) and all(isinstance(getattr(la, "keys", None), torch.Tensor) for la in layers)
    )


_WEIGHT_VIEWS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, dict]] = weakref.WeakKeyDictionary()
"""Per model: its adapters' configurations when their weights were listed, and each adapter's flat weight views."""


def _weight_views(model: torch.nn.Module, adapter: str) -> list[torch.Tensor]:
    """Flat views of the adapter's weights, listed again only when an adapter was added, removed or replaced (its
    configuration is then another object): a walk over every module of the model costs tens of milliseconds, more
    than the comparison it serves. In-place updates (an optimizer's step, loading weights) keep the views valid; a
    weight given new storage (``.data`` replaced, a dtype conversion) is noticed and the list made again."""
    configs = tuple((name, id(config)) for name, config in getattr(model, "peft_config", {}).items())
    listed = _WEIGHT_VIEWS.get(model)
    if listed is None or listed[0] != configs:
        listed = (configs, {})
        _WEIGHT_VIEWS[model] = listed
    kept = listed[1].get(adapter)
    if kept is None or any(view.data_ptr() != param.data_ptr() for param, view in kept):  # a weight was swapped
        marker = f".{adapter}."
        kept = [(p, p.detach().view(-1)) for name, p in model.named_parameters() if marker in name]
        listed[1][adapter] = kept
    return [view for _, view in kept]


def _adapter_weights(model: torch.nn.Module, adapter: str) -> torch.Tensor:
    """The adapter's weights as one flat vector: one comparison instead of hundreds of small ones."""
    views = _weight_views(model, adapter)
    return torch.cat(views) if views else torch.empty(0)


class ContextCache:
    """Contexts per model and adapter, computed on first use and again once the adapter's weights have changed.

    A context keeps a copy of the adapter's weights it was computed with and is used only while they are equal
    (the base's weights never train). Version counters would be cheaper but miss a fused optimizer's step, which
    changes weights in place without counting it. None for a model whose cache is not a plain list of keys and
    values per layer (sliding windows, recurrent state): its rows are computed whole.
    """

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[torch.nn.Module, dict] = weakref.WeakKeyDictionary()

    def get(self, model: torch.nn.Module, contexts: dict[str, Sequence[int]]) -> dict[str, CachedContext | None]:
        """The context of each adapter in ``contexts`` (adapter -> its ids), computed where none is valid."""
        entries = self._entries.setdefault(model, {})
        found = {}
        for adapter, ids in contexts.items():
            key, weights = (adapter, tuple(ids)), _adapter_weights(model, adapter)
            if key not in entries or not torch.equal(entries[key][0], weights):
                entries[key] = (weights, _compute_context(model, adapter, tuple(ids)))
            found[adapter] = entries[key][1]
        return found


def _compute_context(model: torch.nn.Module, adapter: str, ids: tuple[int, ...]) -> CachedContext | None:
    with torch.inference_mode(), Running(model) as running:
        running.prefill([ids], [adapter], pad_id=0, keep=1)
        if not plain_layers(running.cache):
            return None
        layers = tuple((layer.keys[0].clone(), layer.values[0].clone()) for layer in running.cache.layers)
    return CachedContext(ids, layers)
