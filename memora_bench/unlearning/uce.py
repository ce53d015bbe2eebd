"""UCE: Unified Concept Editing (Gandikota et al., WACV 2024; rohitgandikota/unified-concept-editing).

A closed-form edit of every cross-attention key and value projection W: the erased concept's embedding c_i
is mapped to the output the *original* W gives its guide concept, while preserved concepts keep their
outputs and lambda keeps W close to itself (eq. 7 of the paper):

    W' = (lambda W + s_e sum_i v*_i c_i^T + s_p sum_j W c_j c_j^T) (lambda I + s_e sum_i c_i c_i^T + s_p sum_j c_j c_j^T)^-1

Embeddings are the text encoder's output at the concept's last word token, as the reference does. Defaults
are the reference's (lambda 0.5, erase and preserve scale 1, prompts not expanded); the preserved concepts are
every other concept of the world, by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memora_bench.unlearning.common import Target, module_params


@dataclass(frozen=True)
class UCEParams:
    lamb: float = 0.5
    erase_scale: float = 1.0
    preserve_scale: float = 1.0
    seed: int = 0  # closed form: nothing is random; kept so every manifest records a seed


def last_token_embedding(pipe, prompt: str) -> torch.Tensor:
    """Hidden state at the prompt's last word token (for "" the start token), shape (D,)."""
    from memora_bench.models.generate import encode_prompts

    tok = pipe.tokenizer(prompt, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    last = int(tok.attention_mask.sum()) - 2
    return encode_prompts(pipe, [prompt])[0, last].clone()


@torch.no_grad()
def uce(pipe, target: Target, p: UCEParams) -> dict[str, torch.Tensor]:
    params = {k: w for k, w in module_params(pipe.unet, "kv").items() if k.endswith(".weight")}
    erase = [(last_token_embedding(pipe, c), last_token_embedding(pipe, target.guide(c))) for c in target.erased]
    keep = [last_token_embedding(pipe, c) for c in target.kept]
    out = {}
    for name, w in params.items():
        d = w.shape[1]
        mat1 = p.lamb * w.clone()
        mat2 = p.lamb * torch.eye(d)
        for c_i, g in erase:
            v_star = w @ g
            mat1 += p.erase_scale * torch.outer(v_star, c_i)
            mat2 += p.erase_scale * torch.outer(c_i, c_i)
        for c_j in keep:
            mat1 += p.preserve_scale * torch.outer(w @ c_j, c_j)
            mat2 += p.preserve_scale * torch.outer(c_j, c_j)
        new = mat1 @ torch.linalg.inv(mat2)
        w.copy_(new)
        out[name] = new.clone()
    return out
