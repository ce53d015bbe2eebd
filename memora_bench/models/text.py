"""Text-encoder helpers shared by the attacks and the baselines that work in word-embedding space."""

from __future__ import annotations

import torch


def encode_word_embeddings(text_encoder, input_ids: torch.Tensor, word_embeds: torch.Tensor) -> torch.Tensor:
    """Text-encoder hidden states for given word (token) embeddings instead of the embedding table's rows:
    the model's own forward pass, with the token-embedding output replaced (``input_ids`` keep the shape and
    the end-of-text position)."""
    hook = text_encoder.get_input_embeddings().register_forward_hook(lambda m, i, o: word_embeds)
    try:
        return text_encoder(input_ids)[0]
    finally:
        hook.remove()


def prefix_ids(ids: torch.Tensor, k: int) -> torch.Tensor:
    """Token ids with ``k`` placeholder positions after the start token (the prompt shifted right, the last
    ``k`` padding positions dropped), for prompts whose first ``k`` words are replaced by free embeddings."""
    return torch.cat([ids[:, :1], ids[:, 1 : 1 + k], ids[:, 1:-k]], dim=1)
