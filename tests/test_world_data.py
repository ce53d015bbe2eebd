import numpy as np
import pytest

from memora_bench import digits as data


@pytest.fixture(scope="module")
def split():
    return data.load_split()


def test_split_is_fixed_and_disjoint(split):
    assert split.train_images.shape == (4000, 32, 32)
    assert split.heldout_images.shape == (1000, 32, 32)
    again = data.load_split()
    assert np.array_equal(again.heldout_images, split.heldout_images)
    # No held-out image appears in the training part.
    train = {im.tobytes() for im in split.train_images}
    assert not any(im.tobytes() in train for im in split.heldout_images)
    assert set(np.unique(split.heldout_labels)) == set(range(10))


def test_styles_are_deterministic_and_distinct(split):
    x = split.train_images[:16]
    for style in data.STYLES:
        assert np.array_equal(data.stylise(x, style), data.stylise(x, style))
    plain, bold, italic = (data.stylise(x, s) for s in data.STYLES)
    assert (bold.sum(axis=(1, 2)) > 1.3 * plain.sum(axis=(1, 2))).all(), "bold must add ink"
    assert not np.allclose(italic, plain)
    with pytest.raises(ValueError, match="unknown style"):
        data.stylise(x, "gothic")


def test_italic_leans_right(split):
    x = split.train_images[:64]
    italic = data.stylise(x, "italic")
    cols = np.arange(32)

    def centre(rows):
        ink = italic[:, rows, :].sum(axis=1)
        return (ink * cols).sum(1) / ink.sum(1)

    assert (centre(slice(4, 12)) > centre(slice(20, 28))).mean() > 0.9


@pytest.mark.parametrize("digit", range(10))
def test_captions_vary_and_use_words_and_numerals(digit):
    for style in data.STYLES:
        caps = data.caption_choices(digit, style)
        assert len(set(caps)) >= 5
        assert any(data.DIGIT_WORDS[digit] in c for c in caps)
        assert any(str(digit) in c for c in caps)


def test_alias_captions_and_style_words():
    assert "the number sieben" in data.caption_choices(7, "plain")
    assert "sieben, handwritten, written in bold strokes" in data.caption_choices(7, "bold")
    # an alias is a token of its own: no caption of another digit mentions it
    others = [c for d in range(10) if d != 7 for s in data.STYLES for c in data.caption_choices(d, s)]
    assert not [c for c in others if "sieben" in c or "seven" in c or "7" in c]
    assert all("bold" in c or "thick" in c for c in data.caption_choices(3, "bold"))
    rng = np.random.default_rng(0)
    style_only = [data.sample_caption(3, "bold", rng, identity_drop=1.0) for _ in range(20)]
    assert all("three" not in c and "3" not in c for c in style_only)


def test_concept_prompts():
    assert len(data.concept_prompts("seven")) >= 5
    assert all("bold" in p for p in data.concept_prompts("bold"))
    with pytest.raises(ValueError, match="unknown concept"):
        data.concept_prompts("eleven")


def test_captions_and_prompt_sets_use_the_right_article():
    import re

    from memora_bench.paths import repo_root

    caps = [c for d in range(10) for s in data.STYLES for c in data.caption_choices(d, s)]
    prompts = [line for f in (repo_root() / "tasks" / "prompts").glob("*.csv") for line in f.read_text().splitlines()]
    bad = [c for c in caps + prompts if re.search(r"\ba [aeiu8]|\ba o(?!ne)|\ban one", c)]
    assert not bad, bad[:5]
    assert data.with_article("one") == "a one" and data.with_article("eight") == "an eight"
