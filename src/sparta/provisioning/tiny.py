"""``tiny-llama``: a 2-layer random-init Llama and a byte-level BPE tokenizer trained in-process.

Deterministic for a given seed (the same files on every machine), a few MB, built in seconds without any
download, with an ``<|im_start|>role`` chat template: what every fast test and ``configs/tiny.yaml`` run on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

TINY_RECIPE = "tiny-llama/2"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
_WORDS = (
    "the a an of to and in is it that for on with as was be by this are or at from what which how why "
    "model answer question number sum total add subtract multiply divide equals result step first then "
    "because so therefore write explain list give short long good better best word sentence story "
    "cat dog tree river city water light time day year people world small large red blue green"
).split()


def _tiny_corpus(seed: int = 0, lines: int = 300) -> list[str]:
    """A few KB of English-like sentences, arithmetic and chat markers: enough to give BPE useful merges."""
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        if i % 3 == 0:
            a, b = rng.randint(0, 999), rng.randint(0, 999)
            out.append(f"What is {a} + {b}? The answer is {a + b}.")
        else:
            words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 14))]
            out.append(" ".join(words).capitalize() + rng.choice([".", "?", "!"]))
    return out


def build_tiny_tokenizer():
    """A deterministic byte-level BPE (512 tokens) wrapped as a fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        min_frequency=2,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_tiny_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        bos_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def build_tiny(seed: int) -> Callable[[Path], list[str]]:
    def build(directory: Path) -> list[str]:
        import torch
        from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

        tokenizer = build_tiny_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,  # head size 32: the smallest vLLM's CPU attention kernels accept
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=False,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config).to(torch.float32)
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return ["model.safetensors", "tokenizer.json", "config.json"]

    return build
