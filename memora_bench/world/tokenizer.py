"""The exact Stable Diffusion CLIP tokenizer, built offline from the BPE file that open_clip_torch ships.

SD-1.4's tokenizer (``openai/clip-vit-large-patch14``) is byte-level BPE over 49,408 tokens: 256 byte
symbols, their 256 end-of-word forms, 48,894 merges, then ``<|startoftext|>`` (49406) and
``<|endoftext|>`` (49407). open_clip's ``SimpleTokenizer`` builds the same table from the same file; we
write it as the ``vocab.json`` / ``merges.txt`` pair that ``transformers.CLIPTokenizer`` reads.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

N_MERGES = 49152 - 256 - 2
MODEL_MAX_LENGTH = 77


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def bpe_file() -> Path:
    """The CLIP BPE vocabulary inside the installed open_clip_torch package."""
    import open_clip

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise FileNotFoundError(f"open_clip_torch does not ship {path.name} at {path}")
    return path


def write_tokenizer(out_dir: Path) -> Path:
    """Write an SD-1.4-identical CLIP tokenizer folder (vocab, merges, config) to ``out_dir``."""
    lines = gzip.open(bpe_file()).read().decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
        "clean_up_tokenization_spaces": True,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps({k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}, indent=2)
    )
    return out_dir


def load_tokenizer(folder: Path):
    """Load a tokenizer folder written by :func:`write_tokenizer` and check it is the real CLIP one."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(folder), model_max_length=MODEL_MAX_LENGTH)
    ids = tok("a photo of a cat").input_ids
    if ids != [49406, 320, 1125, 539, 320, 2368, 49407] or tok.model_max_length != MODEL_MAX_LENGTH:
        raise RuntimeError(f"tokenizer at {folder} is not SD's CLIP tokenizer (got {ids})")
    return tok
