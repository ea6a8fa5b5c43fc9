"""The classifier: template averaging, the text head (batched), scaled-cosine logits."""

import pytest
import torch
import torch.nn.functional as F

from common.builtin import BUILTIN
from common.classifier import ClipClassifier, average_templates, text_classifier
from common.models import load_clip


def test_average_templates_normalizes_each_then_renormalizes():
    # class 0: [3, 4] -> [0.6, 0.8] and [0, 2] -> [0, 1]; mean [0.3, 0.9]; renormalized [0.316228, 0.948683]
    feats = torch.tensor([[[3.0, 4.0], [0.0, 2.0]], [[1.0, 0.0], [5.0, 0.0]]])
    w = average_templates(feats)
    torch.testing.assert_close(w[0], torch.tensor([0.316228, 0.948683]), atol=1e-5, rtol=0)
    torch.testing.assert_close(w[1], torch.tensor([1.0, 0.0]))


@pytest.fixture(scope="module")
def builtin_clip():
    return load_clip(BUILTIN)


def test_text_classifier_is_unit_norm_and_averages_templates(builtin_clip):
    templates = ["a photo of a {}", "a sketch of a {}"]
    w = text_classifier(builtin_clip, ["star", "circle"], templates)
    assert w.shape == (2, builtin_clip.config["embed_dim"])
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(2))
    singles = torch.stack([text_classifier(builtin_clip, ["star", "circle"], [t]) for t in templates], dim=1)
    torch.testing.assert_close(w, F.normalize(singles.mean(dim=1), dim=-1), atol=1e-6, rtol=0)


def test_classifier_logits_are_scaled_cosines(builtin_clip):
    w = text_classifier(builtin_clip, ["star", "circle", "square"], ["a photo of a {}"])
    model = ClipClassifier(builtin_clip.model.visual, w, logit_scale=50.0).eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
        expected = 50.0 * F.normalize(builtin_clip.model.encode_image(x), dim=-1) @ w.t()
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-5)


def test_text_classifier_in_bounded_passes_equals_one_pass(builtin_clip):
    """80 prompts (8 classes x 10 templates): passes of 16 prompts give the one-pass classifier, in class order."""
    names = ["circle", "square", "triangle", "star", "cross", "hexagon", "red star", "blue circle"]
    templates = [f"a photo of a {{}} number {i}" for i in range(10)]
    whole = text_classifier(builtin_clip, names, templates, batch_size=len(names) * len(templates))
    reports = []
    chunked = text_classifier(builtin_clip, names, templates, batch_size=16, progress=lambda *r: reports.append(r))
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)
    # 16 prompts a pass is 1 class of 10 templates: one report per class, ending at all classes done.
    assert [r[1] for r in reports] == list(range(1, 9)) and {(r[0], r[2]) for r in reports} == {("text classifier", 8)}
    # More templates than a pass holds still goes one class at a time.
    torch.testing.assert_close(text_classifier(builtin_clip, names, templates, batch_size=3), whole, atol=1e-5, rtol=0)


def test_class_names_too_long_for_the_text_tower_are_named(builtin_clip, caplog):
    long = "a remarkably long and winding name of a class that no sixteen token context can hold"
    text_classifier(builtin_clip, ["star", long], ["a photo of a {}"])
    assert [r.getMessage() for r in caplog.records] == [
        f"class name(s) too long for the text tower's 16-token context, their prompts are cut: {long!r}"
    ]
    caplog.clear()
    text_classifier(builtin_clip, ["star", "circle"], ["a photo of a {}"])
    assert caplog.records == []


def test_cut_class_names_are_named_in_one_warning_whatever_the_passes(builtin_clip, caplog):
    long = ["a remarkably long and winding name of a class that no context can hold", "another name " * 6]
    text_classifier(builtin_clip, [long[0], "star", long[1]], ["a photo of a {}"], batch_size=1)  # three passes
    assert len(caplog.records) == 1 and all(repr(name) in caplog.records[0].getMessage() for name in long)
