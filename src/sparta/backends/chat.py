"""A member's chat template as every engine uses it: its messages, the rendered prompt, token ids, the turn end.

A tokenizer in, text and token ids out; no model and no torch. Generation, the judges and DPO all render a
member's prompts here, so an engine that serves the model elsewhere (an OpenAI-compatible server) is fed
exactly the tokens the Hugging Face engine feeds it.
"""

from __future__ import annotations

from typing import Any

from sparta.config import ConfigError

Messages = list[dict[str, str]]

_SENTINEL = "SPARTASENTINEL"


def messages(system_prompt: str | None, instruction: str) -> Messages:
    """The conversation a member sees: its own system prompt (if any), then the instruction as the user turn."""
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*head, {"role": "user", "content": instruction}]


def prompt_text(tokenizer: Any, conversation: Messages, owner: str) -> str:
    """``conversation`` in the tokenizer's chat template, ready for the assistant's turn.

    ``owner`` names whose template it is (e.g. "model 'x' of member 'a'") in the error a template-less tokenizer
    gets.
    """
    if not tokenizer.chat_template:
        raise ConfigError(
            f"{owner} has no chat template; SPARTA prompts members as chat models (use an instruct model)"
        )
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that already carries its special tokens (chat templates write them out)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def turn_suffix(tokenizer: Any, conversation: Messages) -> list[int]:
    """The ids the template writes after an assistant turn's content (``<|im_end|>`` and a newline in ChatML);
    empty when nothing but whitespace follows it. Found by rendering an assistant turn around a sentinel."""
    rendered = tokenizer.apply_chat_template(
        [*conversation, {"role": "assistant", "content": _SENTINEL}], tokenize=False
    )
    _, found, suffix = rendered.rpartition(_SENTINEL)
    return encode(tokenizer, suffix) if found and suffix.strip() else []


def turn_end_id(tokenizer: Any, conversation: Messages, owner: str) -> int:
    """The token that closes an assistant turn (``<|im_end|>``, ``<|eot_id|>``...) after ``conversation``: the
    first of :func:`turn_suffix`; templates that hide it fall back to the eos token."""
    suffix_ids = turn_suffix(tokenizer, conversation)
    if suffix_ids:
        return suffix_ids[0]
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"cannot tell where an assistant turn ends for {owner}: no template suffix, no eos")
    return int(tokenizer.eos_token_id)
