"""The classifier heads against hand-computed logits, their zero-shot start, and their state-dict round trip.

Case used throughout (2 classes, 2 dims, tau = 10): class vectors W = [[0.6, 0.8], [1, 0]] (unit norm), normalized
features f = [[1, 0], [0.6, 0.8]].
  f W^T = [[0.6, 1.0], [1.0, 0.6]]     tau f W^T = [[6, 10], [10, 6]]
"""

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.artifact import DEFAULT_TEMPLATES, HEAD_KINDS
from common.builtin import BUILTIN
from common.classifier import (
    ClipClassifier,
    LinearHead,
    TextHead,
    TrainableTextHead,
    classifier_from_state,
    make_head,
    zero_shot_classifier,
)
from common.errors import UserError
from data.specs import builtin_classnames

W = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
FEATURES = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
TAU = 10.0
ZERO_SHOT = torch.tensor([[6.0, 10.0], [10.0, 6.0]])
HEAD_KEYS = {
    "text": {"head.weight", "head.logit_scale"},
    "trainable": {"head.weight", "head.log_logit_scale"},
    "linear": {"head.weight", "head.bias"},
}


def test_text_head_is_tau_times_cosines():
    torch.testing.assert_close(TextHead(W, TAU)(FEATURES), ZERO_SHOT, atol=1e-6, rtol=0)


def test_text_head_has_no_parameters_only_buffers():
    head = TextHead(W, TAU)
    assert list(head.parameters()) == []
    assert {name for name, _ in head.named_buffers()} == {"weight", "logit_scale"}
    assert set(head.state_dict()) == {"weight", "logit_scale"}
    # The head holds a copy: changing the tensor it was built from changes nothing.
    w = W.clone()
    head = TextHead(w, TAU)
    w.mul_(2)
    torch.testing.assert_close(head(FEATURES), ZERO_SHOT, atol=1e-6, rtol=0)


def test_trainable_head_renormalizes_its_class_vectors():
    # V = [[3, 4], [2, 0]] renormalizes to W, so exp(ln 10) f normalize(V)^T = [[6, 10], [10, 6]].
    head = TrainableTextHead(torch.tensor([[3.0, 4.0], [2.0, 0.0]]), TAU)
    assert head.log_logit_scale.item() == pytest.approx(math.log(TAU))
    torch.testing.assert_close(head(FEATURES), ZERO_SHOT, atol=1e-6, rtol=0)
    with torch.no_grad():
        head.weight.mul_(7.0)  # scaling the class vectors changes nothing
    torch.testing.assert_close(head(FEATURES), ZERO_SHOT, atol=1e-6, rtol=0)
    with torch.no_grad():
        head.log_logit_scale.fill_(math.log(5.0))  # tau 5: half the logits
    torch.testing.assert_close(head(FEATURES), torch.tensor([[3.0, 5.0], [5.0, 3.0]]), atol=1e-6, rtol=0)


def test_trainable_head_learns_its_scale_and_class_directions():
    torch.manual_seed(0)
    head = TrainableTextHead(torch.randn(3, 4), 20.0)
    features = F.normalize(torch.randn(5, 4), dim=-1)
    logits = head(features)
    logits.retain_grad()
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0, 1])).backward()
    assert head.log_logit_scale.grad is not None and head.log_logit_scale.grad.abs().item() > 1e-4
    # d loss / d s = sum(d loss / d logits * logits), logits being exp(s) * cosines.
    expected = (logits.grad * logits).sum()
    torch.testing.assert_close(head.log_logit_scale.grad, expected.detach(), atol=1e-6, rtol=1e-5)
    # Renormalization: a class vector's gradient has no component along the vector itself.
    assert head.weight.grad is not None and head.weight.grad.abs().max().item() > 1e-4
    along = (head.weight.grad * head.weight.detach()).sum(dim=-1)
    torch.testing.assert_close(along, torch.zeros(3), atol=1e-6, rtol=0)


def test_linear_head_is_an_affine_map():
    head = LinearHead(W, TAU)
    # Text start: A = tau W = [[6, 8], [10, 0]], b = 0: the zero-shot logits.
    torch.testing.assert_close(head.weight.detach(), torch.tensor([[6.0, 8.0], [10.0, 0.0]]))
    assert torch.equal(head.bias.detach(), torch.zeros(2))
    torch.testing.assert_close(head(FEATURES), ZERO_SHOT, atol=1e-6, rtol=0)
    # A = [[1, 2], [3, 4]], b = [0.5, -0.5]: [1, 0] -> [1.5, 2.5]; [0.6, 0.8] -> [0.6 + 1.6 + 0.5, 1.8 + 3.2 - 0.5]
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        head.bias.copy_(torch.tensor([0.5, -0.5]))
    torch.testing.assert_close(head(FEATURES), torch.tensor([[1.5, 2.5], [2.7, 4.5]]), atol=1e-6, rtol=0)


def test_random_linear_head_starts_like_nn_linear():
    torch.manual_seed(3)
    head = make_head("linear", W, TAU, init="random")
    torch.manual_seed(3)
    reference = nn.Linear(2, 2)
    assert torch.equal(head.weight, reference.weight) and torch.equal(head.bias, reference.bias)
    assert not torch.allclose(head(FEATURES), ZERO_SHOT)


def test_make_head_kinds_and_refusals():
    assert [type(make_head(kind, W, TAU)) for kind in HEAD_KINDS] == [TextHead, TrainableTextHead, LinearHead]
    for kind in ("text", "trainable"):
        with pytest.raises(ValueError, match=f"a {kind} head starts from the text classifier, not 'random'"):
            make_head(kind, W, TAU, init="random")


@pytest.fixture(scope="module")
def zero_shot():
    names = builtin_classnames()
    return zero_shot_classifier(BUILTIN, None, list(names), list(names.values()), list(DEFAULT_TEMPLATES))


@pytest.fixture(scope="module")
def images(zero_shot):
    _, meta = zero_shot
    return torch.randn(6, 3, meta.image_size, meta.image_size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_every_head_starts_as_the_zero_shot_model(zero_shot, images, kind):
    teacher, meta = zero_shot
    text = teacher.head
    student = ClipClassifier(copy.deepcopy(teacher.visual), text.weight, meta.logit_scale, head=kind).eval()
    with torch.no_grad():
        expected, logits = teacher(images), student(images)
        torch.testing.assert_close(logits, student.head(student.features(images)), atol=0, rtol=0)
    assert expected.abs().max() > 1.0  # logits of a scale where a wrong tau would show
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_state_dict_round_trips_through_classifier_from_state(zero_shot, images, kind):
    teacher, meta = zero_shot
    model = ClipClassifier(copy.deepcopy(teacher.visual), teacher.head.weight, meta.logit_scale, head=kind).eval()
    with torch.no_grad():  # move every head tensor away from its start, so the round trip has something to carry
        for tensor in model.head.state_dict().values():
            tensor.add_(torch.rand_like(tensor))
    state = model.state_dict()
    assert {k for k in state if k.startswith("head.")} == HEAD_KEYS[kind]
    assert all(k.startswith(("visual.", "head.")) for k in state)
    rebuilt = classifier_from_state(dataclasses.replace(meta, head=kind), state, "test weights")
    assert rebuilt.head_kind == kind and not rebuilt.training
    assert type(rebuilt.head) is type(model.head)
    for key, tensor in rebuilt.state_dict().items():
        assert torch.equal(tensor, state[key]), key
    with torch.no_grad():
        assert torch.equal(rebuilt(images), model(images))


@pytest.mark.parametrize("kind, other", [("linear", "trainable"), ("trainable", "text"), ("text", "linear")])
def test_weights_of_another_head_kind_are_refused(zero_shot, kind, other):
    teacher, meta = zero_shot
    state = ClipClassifier(teacher.visual, teacher.head.weight, meta.logit_scale, head=kind).state_dict()
    with pytest.raises(UserError, match="the weights in x.safetensors do not fit the classifier") as info:
        classifier_from_state(dataclasses.replace(meta, head=other), state, "x.safetensors")
    assert "\n" not in str(info.value)
