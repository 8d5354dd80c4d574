"""One judge member as a tokenizer: its chat template, system prompt and judge settings, turned into token ids."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sparta.backends import chat
from sparta.config import JudgeConfig, MemberConfig
from sparta.judge_prompt import judge_instruction
from sparta.records import JudgeRequest, Response


class JudgeEncoder:
    """Everything a judge type needs to turn a request into token ids for one judge member; no model."""

    def __init__(self, member: MemberConfig, tokenizer: Any, config: JudgeConfig) -> None:
        self.member = member
        self.tokenizer = tokenizer
        self.config = config
        self.owner = f"model {member.model!r} of member {member.name!r}"

    def chat_prompt(self, user_text: str) -> str:
        """``user_text`` as the user turn in the member's template, after its system prompt."""
        return chat.prompt_text(self.tokenizer, self.messages(user_text), self.owner)

    def messages(self, user_text: str) -> chat.Messages:
        return chat.messages(self.member.system_prompt, user_text)

    def encode(self, text: str) -> list[int]:
        return chat.encode(self.tokenizer, text)

    @cached_property
    def turn_end(self) -> int:
        """The token that closes an assistant turn in the member's template."""
        return chat.turn_end_id(self.tokenizer, self.messages("hi"), self.owner)

    @cached_property
    def turn_tail(self) -> list[int]:
        """What the template writes after the turn end (a newline in ChatML): part of an answer as DPO scores it,
        not of what the likelihood judge scores."""
        suffix = chat.turn_suffix(self.tokenizer, self.messages("hi"))
        return suffix[1:] if suffix and suffix[0] == self.turn_end else []

    @cached_property
    def stop_ids(self) -> tuple[int, ...]:
        """Where a judge's reply ends: the turn end and the eos token."""
        eos = {self.tokenizer.eos_token_id} - {None}
        return tuple(sorted({self.turn_end} | eos))

    def response_ids(self, response: Response) -> tuple[list[int], bool]:
        """The response's token ids cut to ``judge.max_response_tokens``, and whether that cut anything."""
        ids = self.encode(response.text)
        limit = self.config.max_response_tokens
        return ids[:limit], len(ids) > limit

    def judge_question(self, request: JudgeRequest) -> str:
        """The rating question (``judge_prompt.JUDGE_TEMPLATE``) around the instruction and the (cut) response."""
        ids, cut = self.response_ids(request.response)
        response = self.tokenizer.decode(ids) if cut else request.response.text
        return judge_instruction(request.instruction.text, response)

    def judge_prompt(self, request: JudgeRequest) -> str:
        """The rating question in the member's template, ready for its reply: what generate and logprob read."""
        return self.chat_prompt(self.judge_question(request))
