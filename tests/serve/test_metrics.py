import numpy as np
import pytest

from serve.metrics import agreement, gate, group_accuracies, summarize, topk_accuracy
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
