"""LP-FT: the two-phase learning-rate schedule, the per-group learning rates, a real run whose encoder stays frozen
for the probing steps, and the options it refuses."""

from types import SimpleNamespace

import pytest
import torch

from common.artifact import DEFAULT_TEMPLATES
from common.builtin import BUILTIN
from common.classifier import zero_shot_classifier
from common.errors import OptionError
from data.specs import builtin_classnames
from tests.tiny_data import copy_tiny_folder
from train.checkpointing import set_base_lr
from train.config import TrainConfig
from train.losses import LossConfig
from train.session import _model_state, lp_ft_schedule, warmup_cosine
from train.trainer import prepare, run_training

# ------------------------------------------------------------------------------------------------- the schedule


def test_lp_ft_schedule_restarts_at_the_boundary():
    # total 10, frozen 4, warmup 25%:
    #   probing, warmup_cosine(4): warmup ceil(1) = 1 step: 1; then (1 + cos(pi k/3)) / 2 for k = 0..2: 1, 0.75, 0.25
    #   tuning,  warmup_cosine(6): warmup ceil(1.5) = 2 steps: 1/2, 1; then (1 + cos(pi k/4)) / 2 for k = 0..3:
    #            1, 0.853553, 0.5, 0.146447
    head = [lp_ft_schedule(10, 4, 0.25, encoder=False)(step) for step in range(10)]
    encoder = [lp_ft_schedule(10, 4, 0.25, encoder=True)(step) for step in range(10)]
    tuning = [0.5, 1.0, 1.0, 0.8535534, 0.5, 0.1464466]
    assert head == pytest.approx([1.0, 1.0, 0.75, 0.25, *tuning], abs=1e-7)
    assert encoder == pytest.approx([0.0, 0.0, 0.0, 0.0, *tuning], abs=1e-7)
    assert lp_ft_schedule(10, 4, 0.25, encoder=True)(20) == pytest.approx(0.0, abs=1e-12)  # past the end: decayed


@pytest.mark.parametrize("total, warmup", [(1, 0.1), (10, 0.1), (37, 0.3), (5, 0.0)])
def test_nothing_frozen_is_one_warmup_cosine(total, warmup):
    plain = warmup_cosine(total, warmup)
    for encoder in (True, False):
        factor = lp_ft_schedule(total, 0, warmup, encoder)
        assert [factor(step) for step in range(total + 2)] == [plain(step) for step in range(total + 2)]


# ------------------------------------------------------------------------------------------- per-group rates


@pytest.fixture(scope="module")
def teacher():
    names = builtin_classnames()
    model, _ = zero_shot_classifier(BUILTIN, None, list(names), list(names.values()), list(DEFAULT_TEMPLATES))
    return model


def test_the_head_learns_at_a_multiple_of_the_encoder_rate_and_waits_for_nothing(teacher):
    cfg = TrainConfig(head="trainable", head_lr_scale=10.0, lp_fraction=0.5, lr=1e-3, warmup_fraction=0.25)
    m = _model_state(cfg, teacher, torch.device("cpu"), total=8)  # 4 probing steps, then 4 tuning steps
    assert m.frozen_encoder_steps == 4
    encoder, head = m.optimizer.param_groups
    assert encoder["params"] == list(m.student.visual.parameters()) and encoder["lr_scale"] == 1.0
    assert head["params"] == list(m.student.head.parameters()) and head["lr_scale"] == 10.0
    assert encoder["lr"] == 0.0 and head["lr"] == pytest.approx(1e-2)  # step 0: encoder frozen, head warmed up
    for _ in range(5):  # step 5: tuning's warmup_cosine(4, 0.25) at its step 1, past its 1-step warmup: factor 1
        m.optimizer.step()
        m.scheduler.step()
    assert encoder["lr"] == pytest.approx(1e-3) and head["lr"] == pytest.approx(1e-2)
    # On resume with another lr, each group keeps its own multiple at the same point of its schedule.
    set_base_lr(SimpleNamespace(models=m), 2e-4)
    assert m.scheduler.base_lrs == pytest.approx([2e-4, 2e-3])
    assert encoder["lr"] == pytest.approx(2e-4) and head["lr"] == pytest.approx(2e-3)
    assert encoder["initial_lr"] == pytest.approx(2e-4) and head["initial_lr"] == pytest.approx(2e-3)
    m.optimizer.step()
    m.scheduler.step()  # step 6: (1 + cos(pi / 3)) / 2 = 0.75 of the new rates
    assert [g["lr"] for g in m.optimizer.param_groups] == pytest.approx([1.5e-4, 1.5e-3])


def test_a_fixed_text_head_has_no_head_group(teacher):
    m = _model_state(TrainConfig(loss=LossConfig(kind="ce")), teacher, torch.device("cpu"), total=4)
    assert [g["lr_scale"] for g in m.optimizer.param_groups] == [1.0] and m.frozen_encoder_steps == 0


def test_tes_trains_its_projection_at_the_head_rate(teacher):
    cfg = TrainConfig(loss=LossConfig(kind="tes"), head_lr_scale=5.0, lr=1e-3)
    m = _model_state(cfg, teacher, torch.device("cpu"), total=4)
    assert m.projection is not None
    head = m.optimizer.param_groups[1]
    assert head["params"] == list(m.student.head.parameters()) + list(m.projection.parameters())
    assert head["lr_scale"] == 5.0 and m.scheduler.base_lrs == pytest.approx([1e-3, 5e-3])


# ---------------------------------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def lp_ft_run(tmp_path_factory, benchmark_root):
    """A 4-step run with a trainable head and lp_fraction 0.5 (2 probing steps), the student after each step."""
    folder = copy_tiny_folder(benchmark_root, tmp_path_factory.mktemp("lp-ft") / "tiny")
    cfg = TrainConfig(data=str(folder), max_steps=4, batch_size=16, log_every=1, head="trainable", lp_fraction=0.5)
    session = prepare(cfg, tmp_path_factory.mktemp("lp-ft-run") / "run")
    m = session.models
    start = {k: v.clone() for k, v in m.student.state_dict().items()}
    after: dict[int, dict] = {}

    def on_step(step, terms):
        encoder_params = list(m.student.visual.parameters())
        after[step] = {
            "state": {k: v.clone() for k, v in m.student.state_dict().items()},
            "adam_state": sum(p in m.optimizer.state for p in encoder_params),
            "requires_grad": {p.requires_grad for p in encoder_params},
            "lr": terms["lr"],
        }

    run = run_training(session, on_step)
    return SimpleNamespace(run=run, session=session, start=start, after=after)


def _changed(a: dict, b: dict, keys) -> list[str]:
    return [k for k in keys if not torch.equal(a[k], b[k])]


def test_the_encoder_is_frozen_for_the_probing_steps_then_trains(lp_ft_run):
    s, start, after = lp_ft_run.session, lp_ft_run.start, lp_ft_run.after
    assert s.models.frozen_encoder_steps == 2 and sorted(after) == [1, 2, 3, 4]
    params = [f"visual.{name}" for name, _ in s.models.student.visual.named_parameters()]
    head = ["head.weight", "head.log_logit_scale"]
    teacher = {f"visual.{k}": v for k, v in s.models.teacher.visual.state_dict().items()}
    for step in (1, 2):
        assert _changed(after[step]["state"], teacher, params) == [], step  # still the zero-shot tower
        assert after[step]["adam_state"] == 0 and after[step]["requires_grad"] == {False}
    assert _changed(after[1]["state"], start, head) == head  # the head trains from the first step
    assert _changed(after[2]["state"], after[1]["state"], head) == head
    for step in (3, 4):
        assert len(_changed(after[step]["state"], after[step - 1]["state"], params)) == len(params), step
        assert after[step]["adam_state"] == len(params) and after[step]["requires_grad"] == {True}
    # The logged lr is the encoder's: 0 while probing (the lr after step 1 is the factor of step 1).
    assert after[1]["lr"] == 0.0 and after[2]["lr"] > 0.0
    record = lp_ft_run.run.record
    assert record.train_config["lp_fraction"] == 0.5 and record.classifier.head == "trainable"


def test_the_frozen_encoder_keeps_its_batchnorm_statistics(lp_ft_run):
    s = lp_ft_run.session
    teacher = {f"visual.{k}": v for k, v in s.models.teacher.visual.state_dict().items()}
    params = {f"visual.{name}" for name, _ in s.models.student.visual.named_parameters()}
    buffers = [k for k in teacher if k not in params]
    assert buffers, "the built-in tower has BatchNorm buffers"
    assert _changed(lp_ft_run.after[2]["state"], teacher, buffers) == []


# ------------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"lp_fraction": 0.5},  # proreg's default head is the fixed text classifier
            "--lp-fraction 0.5: LP-FT fits a trainable head first, then fine-tunes: it needs --head trainable or "
            "linear and a fraction below 1",
        ),
        (
            {"lp_fraction": 0.5, "head": "text"},
            "--lp-fraction 0.5: LP-FT fits a trainable head first, then fine-tunes: it needs --head trainable or "
            "linear and a fraction below 1",
        ),
        (
            {"lp_fraction": 1.0, "head": "linear"},
            "--lp-fraction 1.0: LP-FT fits a trainable head first, then fine-tunes: it needs --head trainable or "
            "linear and a fraction below 1",
        ),
        ({"lp_fraction": -0.1, "head": "linear"}, "--lp-fraction must be a finite number at least 0 and at most 1"),
        (
            {"head_init": "random", "head": "text"},
            "--head-init random: only a linear head can start anywhere but the text classifier",
        ),
        (
            {"head_init": "random", "head": "trainable"},
            "--head-init random: only a linear head can start anywhere but the text classifier",
        ),
        ({"head_init": "zeros", "head": "linear"}, "unknown head init 'zeros' (choose from text, random)"),
        (
            {"loss": LossConfig(kind="tes"), "head": "text"},
            "head 'text' does not go with loss 'tes', which trains a linear head",
        ),
        ({"head": "mlp"}, "unknown head 'mlp' (choose from text, trainable, linear)"),
        ({"head": "linear", "head_lr_scale": 0.0}, "--head-lr-scale must be a finite number above 0, got 0.0"),
    ],
)
def test_head_and_lp_ft_options_are_refused_in_one_line(options, message):
    with pytest.raises(OptionError) as info:
        TrainConfig(**options)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_accepted_head_options_resolve_the_head():
    assert TrainConfig().head == "text" and TrainConfig(loss=LossConfig(kind="tes")).head == "linear"
    assert TrainConfig(head="linear", head_init="random", lp_fraction=0.3).lp_fraction == 0.3
    assert TrainConfig(head="trainable", lp_fraction=0.0).head_init == "text"
