"""What a judge scores, as token ids, for any engine; and how raw numbers become a :class:`~sparta.records.Judgment`.

Judging has two halves. *What* is scored (the judge's chat prompt, the pre-filled score prefix and the score
tokens, the likelihood judge's context and targets, the turn-end token, responses cut to
``judge.max_response_tokens``) depends only on the judge member's tokenizer, chat template, system prompt and the
judge settings. *How* the numbers are computed depends on the engine: batched forward passes in
``sparta.backends.hf.judges``, an OpenAI-compatible server elsewhere. This package is the first half, shared by
every engine so that all of them score exactly the same token ids. It imports no torch and runs no model.

Public surface (one :class:`JudgeEncoder` per judge member: ``JudgeEncoder(member_config, tokenizer, judge_config)``):

``generate`` (the paper's judge)
    ``generate_inputs(encoder, request) -> GenerateInputs``: ``prompt_ids`` (= ``messages`` in the template),
    ``stop_ids``, ``max_new_tokens``; decode greedily.
    ``generate_judgment(request, reply_text) -> Judgment``: the parsed score, or the failure reason.

``logprob``
    ``member_score_tokens(encoder) -> ScoreTokens`` once per member (score token ids, "10" split or not).
    ``logprob_inputs(encoder, tokens, request) -> LogprobInputs``: read the next-token probabilities of
    ``tokens.first`` after ``prompt_ids``; when ``after_one_ids`` is set ("10" is "1" + "0"), also those of
    ``tokens.digit_ids`` after it (on HF one pass over ``after_one_ids`` gives both: attention is causal).
    ``reading_from_probabilities(tokens, first, after_one) -> ScoreReading`` from {token id: probability};
    ``logprob_judgment(request, reading) -> Judgment``: the expected score, never a failure.

``likelihood``
    ``likelihood_inputs(encoder, request) -> LikelihoodInputs | None``: score every position of ``target_ids``
    after ``context_ids`` (prompt log-probs of ``context_ids + target_ids``); None for a blank response, which
    needs no pass: ``blank_judgment(request)``.
    ``likelihood_judgment(request, inputs, target_logprobs, judge_config) -> Judgment``.
"""

from sparta.backends.judging.encoder import JudgeEncoder
from sparta.backends.judging.generate import GenerateInputs, generate_inputs, generate_judgment
from sparta.backends.judging.likelihood import (
    LikelihoodInputs,
    blank_judgment,
    likelihood_inputs,
    likelihood_judgment,
    likelihood_score,
    repeated_ngram_mask,
)
from sparta.backends.judging.logprob import (
    PREFIX_VARIANTS,
    LogprobInputs,
    ScoreReading,
    ScoreTokens,
    logprob_inputs,
    logprob_judgment,
    member_score_tokens,
    reading_from_probabilities,
    score_tokens,
)

__all__ = [
    "PREFIX_VARIANTS",
    "GenerateInputs",
    "JudgeEncoder",
    "LikelihoodInputs",
    "LogprobInputs",
    "ScoreReading",
    "ScoreTokens",
    "blank_judgment",
    "generate_inputs",
    "generate_judgment",
    "likelihood_inputs",
    "likelihood_judgment",
    "likelihood_score",
    "logprob_inputs",
    "logprob_judgment",
    "member_score_tokens",
    "reading_from_probabilities",
    "repeated_ngram_mask",
    "score_tokens",
]
