"""Text-encoder helpers shared by the attacks and the baselines that work in word-embedding space."""

from __future__ import annotations

import threading

import torch


def encode_word_embeddings(text_encoder, input_ids: torch.Tensor, word_embeds: torch.Tensor) -> torch.Tensor:
    """Text-encoder hidden states for given word (token) embeddings instead of the embedding table's rows:
    the model's own forward pass, with the token-embedding output replaced (``input_ids`` keep the shape and
    the end-of-text position). The replacement applies to the calling thread's pass only: another thread
    encoding prompts with the same encoder meanwhile (e.g. drawing images beside an attack's steps) gets its own."""
    owner = threading.get_ident()
    hook = text_encoder.get_input_embeddings().register_forward_hook(
        lambda m, i, o: word_embeds if threading.get_ident() == owner else o)
    try:
        return text_encoder(input_ids)[0]
    finally:
        hook.remove()


def prefix_ids(ids: torch.Tensor, k: int) -> torch.Tensor:
    """Token ids with ``k`` placeholder positions after the start token (the prompt shifted right, the last
    ``k`` padding positions dropped), for prompts whose first ``k`` words are replaced by free embeddings."""
    return torch.cat([ids[:, :1], ids[:, 1 : 1 + k], ids[:, 1:-k]], dim=1)


def hide_words(pipe, pairs) -> dict[int, int]:
    """Replace, in ``pipe``'s text encoder, the token embedding of every token of each word by the embedding of
    the replacement word's token at the same position (its last token when it has fewer): prompts that name
    the word now name the replacement, and nothing else changes (the known-answer controls' "hidden" models).
    Returns {replaced token id: source token id}. A token of two hidden words gets the first word's
    replacement; a hidden token that is also a replacement source keeps the source's original embedding."""
    tok = pipe.tokenizer
    table = pipe.text_encoder.get_input_embeddings().weight
    mapping: dict[int, int] = {}
    for word, replacement in pairs:
        ids = tok(word, add_special_tokens=False).input_ids
        repl = tok(replacement, add_special_tokens=False).input_ids
        if not ids or not repl:
            raise ValueError(f"hide {word!r} -> {replacement!r}: a word with no tokens")
        for i, tid in enumerate(ids):
            mapping.setdefault(tid, repl[min(i, len(repl) - 1)])
    with torch.no_grad():
        original = table.detach().clone()
        for tid, src in mapping.items():
            table[tid] = original[src]
    return mapping
