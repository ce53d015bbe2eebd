import pytest

from memora_bench.world.tokenizer import load_tokenizer, write_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_tokenizer(write_tokenizer(tmp_path_factory.mktemp("tok")))


def test_special_tokens_have_clip_ids(tokenizer):
    assert tokenizer.convert_tokens_to_ids("<|startoftext|>") == 49406
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 49407
    assert len(tokenizer) == 49408
    assert tokenizer.model_max_length == 77


def test_known_ids(tokenizer):
    # Reference ids of openai/clip-vit-large-patch14, SD-1.4's tokenizer.
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_agrees_with_open_clip_on_every_caption(tokenizer):
    """open_clip's SimpleTokenizer is an independent implementation over the same BPE file."""
    from open_clip.tokenizer import SimpleTokenizer

    from memora_bench.digits import DIGIT_WORDS, STYLES, caption_choices

    reference = SimpleTokenizer()
    texts = [c for d in range(10) for s in STYLES for c in caption_choices(d, s)]
    texts += ["Van Gogh's Starry Night, oil on canvas!", "a photo of a church  ", "tench (fish) 1999"]
    for text in texts:
        ours = tokenizer(text).input_ids
        assert ours == [49406] + reference.encode(text) + [49407], text
    assert len(texts) > 100 and any(w in t for t in texts for w in DIGIT_WORDS)


def test_pads_to_77_with_endoftext(tokenizer):
    ids = tokenizer("a bold seven", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[-1] == 49407 and ids[0] == 49406


def test_wrong_vocabulary_is_refused(tmp_path):
    folder = write_tokenizer(tmp_path / "tok")
    (folder / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(RuntimeError, match="not SD's CLIP tokenizer"):
        load_tokenizer(folder)
