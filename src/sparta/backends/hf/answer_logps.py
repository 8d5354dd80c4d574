"""Answers' log-probabilities the round has already computed, kept for DPO's reference pass.

SPARTA's reference policy is the member at the start of the round. The likelihood judge computes, for every answer
a member judges, log P(answer | the member's chat prompt for the instruction) through the member's adapter: when
the member then trains on a pair holding that answer, the reference pass would compute the same number again over
the same tokens with the same weights. With the ``others`` panel a member judges about half the pairs it trains on.

An entry is keyed by its token ids (the prompt, then the answer as DPO scores it) and kept with a copy of the
adapter's weights it was computed with: it is handed out only while they are unchanged, so a stale number can never
serve as a reference. Entries are taken once, by the member's training, which changes the weights anyway.
"""

from __future__ import annotations

import torch

from sparta.backends.hf.forward import adapter_weights

Key = tuple[tuple[int, ...], tuple[int, ...]]
"""(prompt ids, answer ids): the answer's tokens are the ones scored, every one of them after the whole prompt."""


class AnswerLogps:
    """Per member: summed log-probabilities of answers after prompts, valid for one state of its adapter."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[torch.Tensor, dict[Key, float]]] = {}

    def keep(self, model: torch.nn.Module, member: str, entries: dict[Key, float]) -> None:
        """Keep ``entries`` (key -> log P(answer | prompt)), computed by ``model`` with ``member``'s adapter as it is
        now; added to those of the same weights, replacing those of others."""
        weights = adapter_weights(model, member)
        held = self._held.get(member)
        if held is None or not torch.equal(held[0], weights):
            held = self._held[member] = (weights, {})
        held[1].update(entries)

    def take(self, model: torch.nn.Module, member: str) -> dict[Key, float]:
        """The member's entries, if its adapter in ``model`` is still as they were computed with; forgotten here."""
        held = self._held.pop(member, None)
        if held is None or not torch.equal(held[0], adapter_weights(model, member)):
            return {}
        return held[1]

    def forget(self, member: str | None = None) -> None:
        """Drop one member's entries, or everyone's (``None``)."""
        if member is None:
            self._held.clear()
        else:
            self._held.pop(member, None)

    def __len__(self) -> int:
        return sum(len(entries) for _, entries in self._held.values())
