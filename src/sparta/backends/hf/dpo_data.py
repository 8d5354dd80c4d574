"""What DPO trains on: every preference pair as the token ids TRL's ``DPOTrainer`` sees, and which pairs fit whole.

We tokenize the pairs ourselves, exactly as TRL 1.16 tokenizes conversational rows (the member's chat template on
the prompt with its generation prompt, then on prompt + answer; the completion starts where the two diverge), for
two reasons TRL's own tokenization cannot serve:

- an answer cut by ``max_new_tokens`` (``PreferencePair.*_truncated``, kept with ``tournament.truncated: keep``)
  must stay open: the template's end-of-turn token after it would teach the member to stop mid-sentence, and TRL
  has no per-example way to leave the last assistant turn open (``continue_final_message`` cannot be combined with
  the generation prompt it renders the prompt with);
- TRL's collator cuts prompt + answer to ``max_length`` (``keep_start``: the answer's end goes first) without a
  word. Running that very collator on each pair tells which pairs it would cut; those are dropped and counted,
  never trained on half. The same collator then serves the trainer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sparta.backends.chat import Messages
from sparta.records import PreferencePair

if TYPE_CHECKING:
    from sparta.backends.hf.pool import ModelPool

log = logging.getLogger(__name__)

TRUNCATION_MODE = "keep_start"
"""TRL's truncation of prompt + answer to ``max_length`` (its default): what the fit check runs."""


def preference_rows(pool: ModelPool, member: str, pairs: Sequence[PreferencePair]) -> list[dict[str, Any]]:
    """The pairs in TRL's conversational preference format, with the member's own system prompt in the prompt:
    what TRL would tokenize itself, and what :func:`pair_tokens` reproduces token for token."""
    return [
        {
            "prompt": pool.messages(member, pair.prompt),
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }
        for pair in pairs
    ]


@dataclass(frozen=True)
class PairTokens:
    """One pair as TRL's preprocessed row: the prompt's ids, then each answer's (the end of its turn included,
    unless the answer was cut by ``max_new_tokens``)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    def row(self) -> dict[str, list[int]]:
        return {"prompt_ids": self.prompt_ids, "chosen_ids": self.chosen_ids, "rejected_ids": self.rejected_ids}


def _rendered(tokenizer: Any, conversation: Messages, **options: Any) -> list[int]:
    return list(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True, **options)["input_ids"])


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def pair_tokens(tokenizer: Any, prompt: Messages, pair: PreferencePair) -> PairTokens:
    """The pair's token ids in the member's template; a cut answer's turn is left open (no end-of-turn token)."""
    prompt_ids = _rendered(tokenizer, prompt, add_generation_prompt=True)
    answers = [
        _rendered(tokenizer, [*prompt, {"role": "assistant", "content": text}], continue_final_message=cut)
        for text, cut in ((pair.chosen, pair.chosen_truncated), (pair.rejected, pair.rejected_truncated))
    ]
    start = min(_common_prefix(prompt_ids, ids) for ids in answers)
    return PairTokens(prompt_ids[:start], answers[0][start:], answers[1][start:])


def trained_whole(tokens: PairTokens, collator: Any) -> bool:
    """Whether TRL's ``collator`` keeps every token of prompt + chosen and prompt + rejected."""
    batch = collator([tokens.row()])
    completions = [len(tokens.chosen_ids), len(tokens.rejected_ids)]
    return batch["completion_mask"].sum(dim=1).tolist() == completions and batch["attention_mask"].sum(
        dim=1
    ).tolist() == [len(tokens.prompt_ids) + n for n in completions]


@dataclass
class FittedPairs:
    """The rows a member trains on (pairs that fit whole, in order) and how many pairs did not fit."""

    pairs: list[PreferencePair] = field(default_factory=list)
    tokens: list[PairTokens] = field(default_factory=list)
    too_long: int = 0


def fit_pairs(pool: ModelPool, member: str, pairs: Sequence[PreferencePair], collator: Any) -> FittedPairs:
    """Tokenize every pair for ``member``; keep those the collator would not cut, count the others (loudly)."""
    fitted = FittedPairs()
    for pair in pairs:
        tokens = pair_tokens(pool.tokenizer(member), pool.messages(member, pair.prompt), pair)
        if trained_whole(tokens, collator):
            fitted.pairs.append(pair)
            fitted.tokens.append(tokens)
        else:
            fitted.too_long += 1
    if fitted.too_long:
        log.warning(
            "member %s: dropping %d of %d preference pairs whose prompt + answer exceed training.max_length=%s "
            "tokens (never trained on cut)",
            member,
            fitted.too_long,
            len(pairs),
            collator.max_length,
        )
    return fitted


def check_end_of_turn(member: str, fitted: FittedPairs, stop_ids: set[int]) -> None:
    """Every complete answer must contain a stop token, or DPO would teach the member never to stop."""
    for index, (pair, tokens) in enumerate(zip(fitted.pairs, fitted.tokens)):
        for side, ids, cut in (
            ("chosen", tokens.chosen_ids, pair.chosen_truncated),
            ("rejected", tokens.rejected_ids, pair.rejected_truncated),
        ):
            if not cut and not stop_ids.intersection(ids):
                raise ValueError(
                    f"member {member!r}: its chat template does not end an assistant turn with an end-of-turn "
                    f"token (looked for ids {sorted(stop_ids)} in the {side} answer of pair {index}); fix the "
                    "template or the tokenizer's eos_token before training"
                )
