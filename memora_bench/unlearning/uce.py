"""UCE: Unified Concept Editing (Gandikota et al., WACV 2024; rohitgandikota/unified-concept-editing).

A closed-form edit of every cross-attention key and value projection W: the erased concept's embeddings c
are mapped to the outputs the *original* W gives its guide concept, while preserved concepts keep their
outputs and lambda keeps W close to itself (eq. 7 of the paper):

    W' = (lambda W + s_e sum_i v*_i c_i^T + s_p sum_j W c_j c_j^T) (lambda I + s_e sum_i c_i c_i^T + s_p sum_j c_j c_j^T)^-1

As the reference ``train-scripts/train_erase.py`` (``edit_model``, technique "replace") does:
- the erased concept is its bare name ("seven"; prompts not expanded, ``--add_prompts`` off); its embeddings
  c_i are the text encoder's last hidden states from the concept's last word token *to the end of the
  sequence* (end token and padding, which carry the prompt's meaning too), aligned token by token with the
  guide's states from the guide's last token ('' becomes ' ', whose span starts at the start token);
- a preserved concept contributes all 77 of its token states, mapped to themselves;
- lambda 0.5, erase scale 1, preserve scale 0.1 (the script's defaults); keys and values both edited.
Preserved concepts: the reference preserves the other artists when it erases an artist and nothing when it
erases objects (its Imagenette runs are "preserve_false"); here a style task preserves every other concept of
the world by name, and a digit task none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memora_bench.models.generate import encode_prompts
from memora_bench.unlearning.common import Target, module_params


@dataclass(frozen=True)
class UCEParams:
    lamb: float = 0.5
    erase_scale: float = 1.0
    preserve_scale: float = 0.1
    seed: int = 0  # closed form: nothing is random; kept so every manifest records a seed


def token_states(pipe, prompt: str) -> tuple[torch.Tensor, int]:
    """(last hidden states (77, D), index of the prompt's last word token; 0, the start token, for '')."""
    tok = pipe.tokenizer(prompt, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    return encode_prompts(pipe, [prompt])[0].clone(), int(tok.attention_mask.sum()) - 2


def aligned_spans(pipe, old: str, new: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's (old, new) embedding pair: each from its last word token on, cut to the same length."""
    h_old, i_old = token_states(pipe, old)
    h_new, i_new = token_states(pipe, new or " ")
    far = max(i_old, i_new)
    n = len(h_old)
    return h_old[i_old : n - (far - i_old)], h_new[i_new : n - (far - i_new)]


def preserved(target: Target) -> tuple[str, ...]:
    return target.kept if any(target.is_style(c) for c in target.erased) else ()


@torch.no_grad()
def uce(pipe, target: Target, p: UCEParams) -> dict[str, torch.Tensor]:
    params = {k: w for k, w in module_params(pipe.unet, "kv").items() if k.endswith(".weight")}
    # float64: C^T C of 76 near-alike end/padding states is badly conditioned; lambda I keeps it invertible
    erase = [tuple(x.double() for x in aligned_spans(pipe, c, target.guide(c))) for c in target.erased]
    keep = [token_states(pipe, c)[0].double() for c in preserved(target)]
    out = {}
    for name, w32 in params.items():
        w = w32.double()
        mat1 = p.lamb * w.clone()
        mat2 = p.lamb * torch.eye(w.shape[1], dtype=torch.float64)
        for c, g in erase:  # rows are tokens: sum_t v*_t c_t^T = W g^T c
            mat1 += p.erase_scale * (w @ g.T) @ c
            mat2 += p.erase_scale * c.T @ c
        for c in keep:
            mat1 += p.preserve_scale * (w @ c.T) @ c
            mat2 += p.preserve_scale * c.T @ c
        new = (mat1 @ torch.linalg.inv(mat2)).to(w32.dtype)
        w32.copy_(new)
        out[name] = new.clone()
    return out
