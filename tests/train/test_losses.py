"""Loss values against numbers worked out by hand, for every loss and weight form.

Case used throughout (2 classes, label 0): student logits s = [0, 0], teacher logits z = [ln 3, 0].
  p_s = [0.5, 0.5]            CE  = ln 2            = 0.693147
  p_t = [0.75, 0.25]          CEt = -ln 0.75        = 0.287682
  KL(p_t || p_s) = 0.75 ln 1.5 + 0.25 ln 0.5        = 0.130812
"""

import math

import pytest
import torch

from common.errors import OptionError
from train.losses import LossConfig, compute_loss, loss_config, total_loss
from train.methods.distillation import distillation_kl
from train.methods.proreg import proreg_weight

S = torch.tensor([[0.0, 0.0]])
Z = torch.tensor([[math.log(3.0), 0.0]])
Y = torch.tensor([0])
CE, CET, KL = 0.693147, 0.287682, 0.130812


def test_kl_at_t1_and_t2():
    assert distillation_kl(S, Z, 1.0).item() == pytest.approx(KL, abs=1e-5)
    # T = 2: p_t = [sqrt3, 1] / (sqrt3 + 1) = [0.633975, 0.366025]; KL = 0.036341; times T^2 = 0.145363
    assert distillation_kl(S, Z, 2.0).item() == pytest.approx(0.145363, abs=1e-5)


def test_ce_loss():
    terms = compute_loss(LossConfig(kind="ce"), S, None, Y)
    assert set(terms) == {"ce_loss"}
    assert terms["ce_loss"].item() == pytest.approx(CE, abs=1e-5)


def test_kd_loss_fixed_tradeoff():
    terms = compute_loss(loss_config("kd", kd_alpha=0.25), S, Z, Y)
    assert terms["ce_loss"].item() == pytest.approx(0.75 * CE, abs=1e-5)
    assert terms["kd_loss"].item() == pytest.approx(0.25 * KL, abs=1e-5)
    assert total_loss(terms).item() == pytest.approx(0.75 * CE + 0.25 * KL, abs=1e-5)


def test_proreg_xerm_weights_and_terms():
    # w = CE / (CE + CEt) = 0.693147 / 0.980829 = 0.706695
    terms = compute_loss(loss_config("proreg", weight_form="xerm", alpha=1.5), S, Z, Y)
    assert terms["proreg_weight_mean"].item() == pytest.approx(0.706695, abs=1e-5)
    assert terms["ce_loss"].item() == pytest.approx((1 - 0.706695) * CE, abs=1e-5)  # 0.203303
    assert terms["kd_loss"].item() == pytest.approx(1.5 * 0.706695 * KL, abs=1e-5)  # 0.138667


def test_proreg_xerm_gamma_two():
    # w = CE^2 / (CE^2 + CEt^2) = 0.480453 / (0.480453 + 0.082761) = 0.853056
    w = proreg_weight(torch.tensor([CE]), torch.tensor([CET]), "xerm", gamma=2.0, eps=1e-8)
    assert w.item() == pytest.approx(0.853056, abs=1e-5)


def test_proreg_official_weight():
    # w = p_t^10 / (p_s + p_t^10) = 0.75^10 / (0.5 + 0.75^10) = 0.0563135 / 0.5563135 = 0.101226
    terms = compute_loss(loss_config("proreg", weight_form="official"), S, Z, Y)
    assert terms["proreg_weight_mean"].item() == pytest.approx(0.101226, abs=1e-5)
    assert terms["kd_loss"].item() == pytest.approx(0.101226 * KL, abs=1e-5)


def test_official_weight_survives_underflow():
    # Both probabilities underflow float32 (exp(-200) == 0): the naive ratio is 0/0, the stable form is not.
    w = proreg_weight(torch.tensor([200.0]), torch.tensor([150.0]), "official", gamma=1.0, eps=1e-8)
    assert torch.isfinite(w).all() and w.item() == pytest.approx(0.0, abs=1e-6)


def test_teacher_better_means_more_distillation():
    ce = torch.tensor([2.0, 2.0])
    ce_t = torch.tensor([0.1, 3.0])  # teacher right on sample 0, wrong on sample 1
    for form in ("xerm", "official"):
        w = proreg_weight(ce, ce_t, form, gamma=1.0, eps=1e-8)
        assert w[0] > 0.5 > w[1], form


def test_no_gradient_through_proreg_weight():
    s = torch.tensor([[0.3, -0.2], [1.0, 0.5]], requires_grad=True)
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 1])
    cfg = loss_config("proreg", weight_form="xerm", gamma=2.0)
    terms = compute_loss(cfg, s, z, y)
    assert not terms["proreg_weight_mean"].requires_grad
    total_loss(terms).backward()
    # Same loss with the weights frozen as constants by hand: gradients must match exactly.
    s2 = s.detach().clone().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(s2, y, reduction="none")
    ce_t = torch.nn.functional.cross_entropy(z, y, reduction="none")
    w = (ce.detach() ** 2) / (ce.detach() ** 2 + ce_t**2 + 1e-8)
    manual = ((1 - w) * ce).mean() + (w * distillation_kl(s2, z, 1.0)).mean()
    manual.backward()
    torch.testing.assert_close(s.grad, s2.grad)


def test_bad_config_is_refused():
    with pytest.raises(OptionError, match=r"unknown loss 'focal' \(choose from proreg, kd, ce, tes, flyp\)"):
        LossConfig(kind="focal")
    with pytest.raises(OptionError, match=r"unknown weight_form 'magic' \(choose from xerm, official\)"):
        loss_config("proreg", weight_form="magic")
    with pytest.raises(OptionError, match="loss 'kd' takes kd_alpha, temperature; not alpha"):
        loss_config("kd", alpha=2.0)
