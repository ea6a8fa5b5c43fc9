"""TeS: its loss against numbers worked out by hand, its options, and a real run with its projection head.

Hand-computed case (2 samples, 3 classes, labels y = [0, 2], lv = 0.2, lt = 0.4, tau = 0.5):
  text cosines c = tau u with u = [[ln 2, 0, 0], [0, ln 3, 0]]
    softmax(u) = [[1/2, 1/4, 1/4], [1/5, 3/5, 1/5]]
    q = 0.2 softmax(u) + 0.8 onehot(y) = [[0.9, 0.05, 0.05], [0.04, 0.12, 0.84]]
    CE(u, y) = [ln 2, ln 5] = [0.6931472, 1.6094379], mean 1.1512925; text_loss = 0.4 * 1.1512925 = 0.4605170
  student logits s = [[0, 0, 0], [ln 4, 0, 0]]
    softmax(s) = [[1/3, 1/3, 1/3], [2/3, 1/6, 1/6]]
    CE_soft(s, q) = [ln 3, -(0.04 ln(2/3) + 0.96 ln(1/6))] = [1.0986123, 1.7363077], mean 1.4174600 = vision_loss
    CE(s, y) = [ln 3, ln 6] = [1.0986123, 1.7917595], mean 1.4451859 = ce
  total = 1.4174600 + 0.4605170 = 1.8779770
  d vision_loss / d s = (softmax(s) - q) / 2 = [[-0.2833333, 0.1416667, 0.1416667], [0.3133333, 0.0233333, -0.3366667]]
"""

import math
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from common.errors import CheckpointError, OptionError
from common.run import open_run
from tests.tiny_data import copy_tiny_folder
from train.config import TrainConfig
from train.losses import LossConfig, compute_loss, loss_config, total_loss
from train.methods.base import LossInputs
from train.methods.tes import TextProjection, tes_terms
from train.trainer import TrainingInterrupted, prepare, train

TAU = 0.5
U = torch.tensor([[math.log(2.0), 0.0, 0.0], [0.0, math.log(3.0), 0.0]])
COSINES = TAU * U
STUDENT = torch.tensor([[0.0, 0.0, 0.0], [math.log(4.0), 0.0, 0.0]])
LABELS = torch.tensor([0, 2])
VISION, TEXT_CE, CE = 1.4174600, 1.1512925, 1.4451859


def tes(**kw) -> LossConfig:
    return loss_config("tes", **{"tes_lv": 0.2, "tes_lt": 0.4, "tes_tau": TAU, **kw})


def test_tes_terms_on_the_hand_computed_case():
    terms = compute_loss(tes(), STUDENT, None, LABELS, COSINES)
    assert set(terms) == {"vision_loss", "text_loss", "ce", "text_ce"}
    assert terms["vision_loss"].item() == pytest.approx(VISION, abs=1e-6)
    assert terms["text_loss"].item() == pytest.approx(0.4 * TEXT_CE, abs=1e-6)  # 0.4605170
    assert terms["text_ce"].item() == pytest.approx(TEXT_CE, abs=1e-6)
    assert terms["ce"].item() == pytest.approx(CE, abs=1e-6)
    assert total_loss(terms).item() == pytest.approx(1.8779770, abs=1e-6)  # only the *_loss terms are summed
    direct = tes_terms(tes().options, LossInputs(STUDENT, None, LABELS, COSINES))
    assert {k: v.item() for k, v in direct.items()} == {k: v.item() for k, v in terms.items()}


def test_the_reference_distribution_carries_no_gradient():
    student, cosines = STUDENT.clone().requires_grad_(True), COSINES.clone().requires_grad_(True)
    terms = compute_loss(tes(), student, None, LABELS, cosines)
    g_student, g_cosines = torch.autograd.grad(terms["vision_loss"], [student, cosines], allow_unused=True)
    assert g_cosines is None or torch.equal(g_cosines, torch.zeros_like(cosines))
    expected = torch.tensor([[-0.2833333, 0.1416667, 0.1416667], [0.3133333, 0.0233333, -0.3366667]])
    torch.testing.assert_close(g_student, expected, atol=1e-6, rtol=0)  # (softmax(s) - q) / N: q is a constant
    # The text loss trains the projection only, never the vision head; the logged terms train nothing.
    g_student, g_cosines = torch.autograd.grad(terms["text_loss"], [student, cosines], allow_unused=True)
    assert g_student is None and g_cosines is not None and g_cosines.abs().sum() > 0
    assert not terms["ce"].requires_grad and not terms["text_ce"].requires_grad


def test_lv_zero_is_plain_cross_entropy():
    terms = compute_loss(tes(tes_lv=0.0), STUDENT, None, LABELS, COSINES)
    assert terms["vision_loss"].item() == pytest.approx(CE, abs=1e-6)
    assert terms["vision_loss"].item() == pytest.approx(F.cross_entropy(STUDENT, LABELS).item(), abs=1e-7)


def test_lv_one_distills_the_text_distribution_alone():
    # q = softmax(u): sample 0 -(1/2 + 1/4 + 1/4) ln(1/3) = ln 3; sample 1 -(1/5 ln(2/3) + 4/5 ln(1/6)) = 1.5145006
    terms = compute_loss(tes(tes_lv=1.0), STUDENT, None, LABELS, COSINES)
    assert terms["vision_loss"].item() == pytest.approx((1.0986123 + 1.5145006) / 2, abs=1e-6)  # 1.3065564


@pytest.mark.parametrize("lt", [0.0, 0.4, 2.5])
def test_lt_scales_the_text_loss(lt):
    terms = compute_loss(tes(tes_lt=lt), STUDENT, None, LABELS, COSINES)
    assert terms["text_loss"].item() == pytest.approx(lt * TEXT_CE, abs=1e-6)
    assert terms["text_ce"].item() == pytest.approx(TEXT_CE, abs=1e-6)
    assert terms["vision_loss"].item() == pytest.approx(VISION, abs=1e-6)


def test_tau_divides_the_cosines():
    # tau 0.25 doubles u: softmax([2 ln 2, 0, 0]) = [4/6, 1/6, 1/6], softmax([0, 2 ln 3, 0]) = [1/11, 9/11, 1/11]
    # CE(u, y) = [ln 1.5, ln 11] = [0.4054651, 2.3978953], mean 1.4016802
    terms = compute_loss(tes(tes_tau=0.25), STUDENT, None, LABELS, COSINES)
    assert terms["text_ce"].item() == pytest.approx(1.4016802, abs=1e-6)


def test_tes_needs_the_text_cosines():
    with pytest.raises(ValueError, match="needs the student's logits and the projection's text cosines"):
        compute_loss(tes(), STUDENT, None, LABELS)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("tes_lv", -0.1, "tes_lv must be a finite number at least 0 and at most 1, got -0.1"),
        ("tes_lv", 1.5, "tes_lv must be a finite number at least 0 and at most 1, got 1.5"),
        ("tes_lt", -1.0, "tes_lt must be a finite number at least 0, got -1.0"),
        ("tes_lt", math.inf, "tes_lt must be a finite number at least 0, got inf"),
        ("tes_tau", 0.0, "tes_tau must be a finite number above 0, got 0.0"),
        ("tes_tau", math.nan, "tes_tau must be a finite number above 0, got nan"),
    ],
)
def test_bad_tes_options_are_refused_in_one_line(option, value, message):
    with pytest.raises(OptionError) as info:
        loss_config("tes", **{option: value})
    assert str(info.value) == message


# ------------------------------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def tes_folder(tmp_path_factory, benchmark_root) -> Path:
    return copy_tiny_folder(benchmark_root, tmp_path_factory.mktemp("tes") / "tiny")


def tes_config(folder: Path, **kw) -> TrainConfig:
    # 54 training images, batch 16: 4 steps an epoch, so 3 steps stay inside the first epoch.
    options = {"max_steps": 3, "batch_size": 16, "log_every": 1, "loss": LossConfig(kind="tes")} | kw
    return TrainConfig(data=str(folder), **options)


@pytest.fixture(scope="module")
def tes_run(tes_folder, tmp_path_factory):
    return train(tes_config(tes_folder), tmp_path_factory.mktemp("tes-run") / "run")


def test_a_tes_run_ships_a_linear_head_and_keeps_its_projection_for_resuming(tes_run):
    record = open_run(tes_run.path).record
    assert record.status == "finished" and record.progress.step == 3
    assert record.classifier.head == "linear" and record.train_config["head"] == "linear"
    assert record.train_config["loss"]["kind"] == "tes"
    best = load_file(str(tes_run.path / "best.safetensors"))
    assert {k for k in best if k.startswith("head.")} == {"head.weight", "head.bias"}
    assert all(k.startswith(("visual.", "head.")) for k in best), "the projection is training-only"
    assert set(best) == set(load_file(str(tes_run.path / "last.safetensors")))
    width = best["head.weight"].shape[1]
    state = torch.load(tes_run.path / "state.pt", weights_only=True)
    expected = TextProjection(width, width).state_dict()
    assert set(state["projection"]) == set(expected)
    assert {k: v.shape for k, v in state["projection"].items()} == {k: v.shape for k, v in expected.items()}
    assert int(state["projection"]["layers.1.num_batches_tracked"]) == 3  # it trained with the model
    assert tes_run.load_classifier().head_kind == "linear"
    steps = [r for r in tes_run.metrics() if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for r in steps:
        assert {"vision_loss", "text_loss", "ce", "text_ce"} <= set(r)
        assert r["loss"] == pytest.approx(r["vision_loss"] + r["text_loss"], rel=1e-6)


def test_an_interrupted_tes_run_resumes_with_its_projection(tes_run, tes_folder, tmp_path):
    out = tmp_path / "run"

    def press_ctrl_c(step, terms):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(tes_config(tes_folder), out, on_step=press_ctrl_c)
    assert open_run(out).record.status == "interrupted"
    assert "projection" in torch.load(out / "state.pt", weights_only=True)

    # A state.pt without the projection is not this run's: resuming is refused, naming the file.
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    state = torch.load(broken / "state.pt", weights_only=True)
    del state["projection"]
    torch.save(state, broken / "state.pt")
    with pytest.raises(CheckpointError, match=r"state.pt or last.safetensors is not this run's \('projection'\)"):
        prepare(None, broken, resume=True)

    train(None, out, resume=True)
    straight, resumed = tes_run.metrics(), open_run(out).metrics()
    assert [r["step"] for r in resumed] == [r["step"] for r in straight]
    for a, b in zip(straight, resumed, strict=True):
        for key in ("loss", "vision_loss", "text_loss", "val_top1"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), (a["step"], key)
    assert (out / "last.safetensors").read_bytes() == (tes_run.path / "last.safetensors").read_bytes()
    mine = torch.load(out / "state.pt", weights_only=True)["projection"]
    theirs = torch.load(tes_run.path / "state.pt", weights_only=True)["projection"]
    for key, tensor in theirs.items():
        torch.testing.assert_close(mine[key], tensor, atol=1e-6, rtol=1e-6, msg=key)


def test_a_tes_epoch_ending_in_a_single_image_trains(tes_folder, tmp_path):
    run = train(tes_config(tes_folder, max_steps=2, batch_size=53), tmp_path / "run")
    assert run.record.status == "finished"
