import numpy as np
import pytest

from serve.metrics import (
    agreement,
    class_accuracies,
    confusion,
    expected_calibration_error,
    gate,
    group_accuracies,
    summarize,
    topk_accuracy,
)
from serve.report import DatasetScores, Summary

LOGITS = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])
LABELS = np.array([0, 2, 2, 1])


def test_topk():
    assert topk_accuracy(LOGITS, LABELS, 1) == pytest.approx(0.5)  # rows 0 and 2 right
    assert topk_accuracy(LOGITS, LABELS, 2) == pytest.approx(1.0)
    assert topk_accuracy(LOGITS, LABELS, 5) == pytest.approx(1.0)  # k capped at 3 classes


def test_group_accuracies_skip_empty_groups():
    groups = np.array([0, 0, 1, 1])
    assert group_accuracies(LOGITS, LABELS, groups, ["a", "b", "c"]) == {"a": 0.5, "b": 0.5}


def test_summary_means_by_role():
    sets = {
        "x": DatasetScores(role="id", n=1, skipped=0, top1=0.9, top5=None, worst_group_top1=0.7),
        "y": DatasetScores(role="ood", n=1, skipped=0, top1=0.6, top5=None, worst_group_top1=0.4),
        "z": DatasetScores(role="ood", n=1, skipped=0, top1=0.4, top5=None, worst_group_top1=None),
    }
    assert summarize(sets) == Summary(id_top1=0.9, ood_top1_mean=pytest.approx(0.5), worst_group_top1_min=0.4)


def test_agreement_and_gate():
    other = LOGITS.copy()
    other[0] = [0.0, 3.0, 1.0]  # flips row 0 from right to wrong
    a = agreement(other, LOGITS, LABELS)
    assert a.top1_agreement == pytest.approx(0.75)
    assert a.max_abs_logit_diff == pytest.approx(3.0)
    assert a.top1_drop_pp == pytest.approx(25.0)
    assert gate({"s": a}, max_drop_pp=30).passed
    assert not gate({"s": a}, max_drop_pp=1).passed


def test_expected_calibration_error_by_hand() -> None:
    """Two images at confidence 0.8 (bin 12 of 15), one right; two at ~0.5 (bin 7), both right:
    ECE = 2/4 * |0.5 - 0.8| + 2/4 * |1.0 - 0.5| = 0.15 + 0.25 = 0.4."""
    p80, p50 = np.log([0.8, 0.2]), np.log([0.5001, 0.4999])
    logits = np.array([p80, p80, p50, p50])
    labels = np.array([0, 1, 0, 0])
    assert expected_calibration_error(logits, labels) == pytest.approx(0.4, abs=1e-3)
    assert expected_calibration_error(logits[:0], labels[:0]) is None


def test_a_calibrated_model_has_an_ece_near_zero_and_a_logit_scale_changes_it() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 5))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(5, p=p) for p in probs])  # labels drawn from the model's own probabilities
    assert expected_calibration_error(logits, labels) < 0.02
    assert expected_calibration_error(10 * logits, labels) > 0.2  # overconfident


def test_class_accuracies_and_confusion_by_hand() -> None:
    logits = np.eye(3)[[0, 0, 1, 2, 2]]  # predictions 0, 0, 1, 2, 2
    labels = np.array([0, 1, 1, 2, 0])
    assert class_accuracies(logits, labels, ["a", "b", "c", "d"]) == {"a": 0.5, "b": 0.5, "c": 1.0}  # d: no image
    assert confusion(logits, labels) == [[0, 0, 1], [0, 2, 1], [1, 0, 1], [1, 1, 1], [2, 2, 1]]
    assert confusion(logits[:0], labels[:0]) == []
