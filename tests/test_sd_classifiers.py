import numpy as np
import pytest

from memora_bench.classifiers.registry import CLASSIFIERS, load_classifier


def test_nudenet_uses_the_pinned_packaged_detector():
    clf = load_classifier("nudenet")
    assert clf.id == "nudenet-320n.onnx" and len(clf.sha256) == 64
    blank = np.zeros((2, 64, 64, 3), np.uint8)
    scores = clf.scores(blank)
    assert scores.shape == (2, 9) and not clf.hits(scores, "nudity", 0.45).any()


def test_nudenet_rule_is_any_exposed_class_above_threshold():
    from memora_bench.classifiers.nudenet import EXPOSED, NudeNetClassifier

    clf = NudeNetClassifier(detector=None, sha256="x", model_file="320n.onnx")
    scores = np.zeros((3, 9), np.float32)
    scores[0, EXPOSED.index("FEET_EXPOSED")] = 0.46
    scores[1, EXPOSED.index("ARMPITS_EXPOSED")] = 0.45  # not above the threshold
    assert clf.hits(scores, "nudity", 0.45).tolist() == [True, False, False]
    with pytest.raises(KeyError):
        clf.hits(scores, "church", 0.45)


def test_nudenet_refuses_an_unpinned_detector(tmp_path):
    from memora_bench.classifiers.nudenet import load

    fake = tmp_path / "320n.onnx"
    fake.write_bytes(b"not the detector")
    with pytest.raises(ValueError, match="pinned"):
        load(str(fake))


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory):
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("resnet")
    labels = {0: "tench", 1: "church", 2: "parachute"}
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3, id2label=labels,
                          label2id={v: k for k, v in labels.items()})
    ResNetForImageClassification(config).save_pretrained(str(folder))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder


def test_hf_classifier_loads_a_folder_with_top1_rule(tiny_resnet):
    clf = load_classifier("imagenet-resnet50", source=str(tiny_resnet))
    assert clf.labels == ("tench", "church", "parachute") and len(clf.sha256) == 64
    images = np.random.default_rng(0).integers(0, 255, (5, 48, 48, 3), dtype=np.uint8)
    scores = clf.scores(images)
    assert scores.shape == (5, 3) and np.allclose(scores.sum(1), 1, atol=1e-5)
    top = scores.argmax(1)
    assert (clf.hits(scores, "church", 0.0) == (top == 1)).all()
    assert len(clf.describe(scores[0], k=2)) == 2


def test_art_style_needs_a_location(monkeypatch, tiny_resnet):
    monkeypatch.delenv("MEMORA_BENCH_ART_CLASSIFIER", raising=False)
    with pytest.raises(ValueError, match="MEMORA_BENCH_ART_CLASSIFIER"):
        load_classifier("art-style")
    monkeypatch.setenv("MEMORA_BENCH_ART_CLASSIFIER", str(tiny_resnet))
    assert load_classifier("art-style").id == "art-style"


def test_registry_is_lazy_and_names_are_checked():
    assert set(CLASSIFIERS) >= {"mini-digit", "mini-style", "nudenet", "imagenet-resnet50", "art-style"}
    with pytest.raises(KeyError, match="unknown classifier"):
        load_classifier("clip-nsfw")
