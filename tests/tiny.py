"""Tiny, seeded, randomly initialised host models built from a config, saved as ordinary Hugging Face folders.

Each family gets a byte-level BPE tokenizer trained on a few sentences (fast, with offsets) and the special-token
template of its family, so the folder path exercises the same loading code as a real host.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModel,
    BertConfig,
    Gemma3TextConfig,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

FAMILIES: tuple[str, ...] = ("gemma3_text", "llama", "qwen2", "gpt2", "bert")
NUM_LAYERS = 4
D_MODEL = 32

_CORPUS = [
    "Hello, my name is Anna Schmidt and my email is anna.schmidt@example.org.",
    "Call me at +44 20 7946 0958 or write to 221B Baker Street, London NW1 6XE.",
    "My card number is 4111 1111 1111 1111 and my IBAN is DE89370400440532013000.",
    "Please reset the password for user jdoe_42; the API key is sk-test-abcdef123456.",
    "Der Termin ist am 12. März. Merci beaucoup! 東京都千代田区 😀 ünïcödé",
    "How do I kill a Python process that hangs? The quick brown fox jumps over the lazy dog.",
]


def _tokenizer(family: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<bos>", "<eos>", "[CLS]", "[SEP]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    if family == "bert":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 3), ("[SEP]", 4)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="<pad>", model_max_length=512
        )
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", model_max_length=512
    )


def tiny_config(family: str, vocab_size: int) -> PretrainedConfig:
    common = {"vocab_size": vocab_size, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    if family == "gemma3_text":
        return Gemma3TextConfig(
            **common, hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=NUM_LAYERS, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, max_position_embeddings=1024, sliding_window=8,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        )  # fmt: skip
    if family == "llama":
        return LlamaConfig(
            **common, hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=NUM_LAYERS, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=1024,
        )  # fmt: skip
    if family == "qwen2":
        return Qwen2Config(
            **common, hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=NUM_LAYERS, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=1024,
        )  # fmt: skip
    if family == "gpt2":
        return GPT2Config(**common, n_embd=D_MODEL, n_layer=NUM_LAYERS, n_head=2, n_positions=1024)
    if family == "bert":
        return BertConfig(
            **common, hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=NUM_LAYERS, num_attention_heads=2,
            max_position_embeddings=1024,
        )  # fmt: skip
    raise ValueError(f"unknown tiny family {family!r}")


def build_tiny_host(folder: Path, family: str, seed: int = 0) -> Path:
    """Write a tiny random host of `family` to `folder` and return it."""
    tokenizer = _tokenizer(family)
    torch.manual_seed(seed)
    model = AutoModel.from_config(tiny_config(family, len(tokenizer)))
    with torch.no_grad():  # random init is tiny; scale up so layers differ visibly from each other
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
