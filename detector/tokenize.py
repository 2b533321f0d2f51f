"""tokenize: text -> token ids with character offsets -> overlapping windows -> padded batches.

Each text is tokenized once without special tokens. A text longer than one window is cut into overlapping windows;
every token is *owned* by exactly one window (the one where it sits furthest from an edge, split at the overlap's
midpoint), and only the owner's scores are kept when windows are stitched back. So no token, and therefore no span,
is lost or counted twice at a seam. Batches are right-padded: real tokens keep positions 0..n-1 in every family
(RoPE or absolute), and a causal token never attends to the padding after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from probeguard.detector.errors import HostError, InvalidInputError


@dataclass(frozen=True)
class EncodedText:
    ids: np.ndarray  # [n_tokens] int64, no special tokens
    offsets: np.ndarray  # [n_tokens, 2] int64, character [start, end) of each token in the text


@dataclass(frozen=True)
class Window:
    text_index: int
    start: int  # token range [start, end) of the text this window covers
    end: int
    own_start: int  # token range [own_start, own_end) whose scores this window contributes
    own_end: int


@dataclass(frozen=True)
class TokenBatch:
    input_ids: np.ndarray  # [batch, seq] int64, right-padded
    attention_mask: np.ndarray  # [batch, seq] int64, 1 for real (incl. special) tokens
    windows: tuple[Window, ...]  # one per row
    content_offset: int  # index of the first content token in each row (number of prefix special tokens)


def whole_window(text_index: int, n_tokens: int) -> Window:
    """One window covering (and owning) the first `n_tokens` tokens of a text."""
    return Window(text_index, 0, n_tokens, 0, n_tokens)


def plan_windows(n_tokens: int, content_len: int, overlap: int, text_index: int = 0) -> list[Window]:
    """Cut `n_tokens` into windows of at most `content_len` tokens, each starting `overlap` tokens before the previous
    one ends. The last window is only as long as what is left plus the overlap: a 523-token text in 511-token windows
    costs 511 + 76 tokens, not 2 x 511 (its owned tokens still see at least overlap / 2 tokens before them)."""
    if n_tokens <= content_len:
        return [whole_window(text_index, n_tokens)]
    bounds = [(0, content_len)]
    while bounds[-1][1] < n_tokens:
        start = bounds[-1][1] - overlap
        bounds.append((start, min(start + content_len, n_tokens)))
    windows: list[Window] = []
    for i, (start, end) in enumerate(bounds):
        own_start = 0 if i == 0 else (start + bounds[i - 1][1]) // 2
        own_end = n_tokens if i == len(bounds) - 1 else (bounds[i + 1][0] + end) // 2
        windows.append(Window(text_index, start, end, own_start, own_end))
    return windows


class HostTokenizer:
    """A fast tokenizer with offsets, plus the special tokens the host expects around each window."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise HostError("the host tokenizer must be a fast (Rust) tokenizer: character offsets are required")
        self.tokenizer = tokenizer
        tokenizer.model_max_length = 1 << 30  # windowing is done here, not by the tokenizer
        bare = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
        at = next((i for i in range(len(full)) if full[i : i + len(bare)] == bare), None)
        if at is None:
            raise HostError("cannot locate content tokens among the tokenizer's special tokens")
        self.prefix_ids: tuple[int, ...] = tuple(full[:at])
        self.suffix_ids: tuple[int, ...] = tuple(full[at + len(bare) :])
        pad = tokenizer.pad_token_id
        self.pad_id: int = int(pad) if pad is not None else 0

    @classmethod
    def from_folder(cls, path: Path) -> HostTokenizer:
        try:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise HostError(f"cannot load the host tokenizer from {path}: {exc}") from None
        return cls(tok)

    @property
    def num_special(self) -> int:
        return len(self.prefix_ids) + len(self.suffix_ids)

    def encode(self, text: str) -> EncodedText:
        try:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        except (TypeError, ValueError) as exc:  # e.g. lone surrogates cannot be encoded
            raise InvalidInputError(f"text cannot be tokenized ({type(exc).__name__})") from None
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        return EncodedText(ids=ids, offsets=offsets)

    def collate(self, windows: Sequence[Window], encoded: Sequence[EncodedText]) -> TokenBatch:
        """Right-pad windows (with their special tokens) into one batch."""
        rows = [
            [*self.prefix_ids, *encoded[w.text_index].ids[w.start : w.end].tolist(), *self.suffix_ids] for w in windows
        ]
        seq = max(len(r) for r in rows)
        input_ids = np.full((len(rows), seq), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), seq), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return TokenBatch(input_ids, mask, tuple(windows), len(self.prefix_ids))
