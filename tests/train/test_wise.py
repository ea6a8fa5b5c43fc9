"""WiSE-FT: the weight interpolation on hand-made tensors, and interpolated runs of a tiny fine-tuned run whose ends
are exactly the zero-shot model and the fine-tuned one."""

import dataclasses
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from common.classifier import zero_shot_classifier
from common.errors import OptionError, UserError
from common.provenance import file_sha256
from common.run import Run, open_run
from data.loading import read_batch
from data.specs import resolve_train_data
from data.transforms import eval_transform
from tests.tiny_data import copy_tiny_folder
from train.config import TrainConfig
from train.losses import LossConfig
from train.trainer import train
from train.wise import check_compatible, interpolate, interpolate_in_place, write_wise_run, zero_shot_state

# ------------------------------------------------------------------------------------------------ interpolate


def pair() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(3, 4, generator=g), "b": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    tuned = {"w": torch.randn(3, 4, generator=g), "b": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    return base, tuned


def test_the_ends_are_the_models_exactly():
    base, tuned = pair()
    at0, at1 = interpolate(base, tuned, 0.0), interpolate(base, tuned, 1.0)
    assert set(at0) == set(at1) == {"w", "b", "n"}
    assert torch.equal(at0["w"], base["w"]) and torch.equal(at0["b"], base["b"])
    assert torch.equal(at1["w"], tuned["w"]) and torch.equal(at1["b"], tuned["b"])


def test_halfway_is_the_mean_and_integer_tensors_come_from_tuned():
    base, tuned = pair()
    half = interpolate(base, tuned, 0.5)
    torch.testing.assert_close(half["w"], (base["w"] + tuned["w"]) / 2, atol=1e-7, rtol=0)
    assert torch.equal(half["b"], torch.tensor([2.0, 4.0]))  # (1 + 3) / 2, (2 + 6) / 2
    quarter = interpolate(base, tuned, 0.25)
    assert torch.equal(quarter["b"], torch.tensor([1.5, 3.0]))  # 0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * 6
    for out in (half, quarter, interpolate(base, tuned, 0.0)):  # a counter is not a weight: never averaged
        assert out["n"].dtype == torch.int64 and out["n"].item() == 7
    assert interpolate(base, tuned, 0.0)["n"] is not tuned["n"]  # a copy, not the caller's tensor


def test_weights_of_different_models_are_refused():
    base, tuned = pair()
    with pytest.raises(UserError, match=r"different models \(tensors extra differ\)"):
        interpolate(base | {"extra": torch.zeros(1)}, tuned, 0.5)
    with pytest.raises(UserError, match=r"different models \(tensors b differ\)"):
        interpolate({k: v for k, v in base.items() if k != "b"}, tuned, 0.5)
    with pytest.raises(UserError, match=r"different models \(w: \(4, 3\) vs \(3, 4\)\)"):
        interpolate(base | {"w": base["w"].t()}, tuned, 0.5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_zero_one_is_refused(alpha):
    base, tuned = pair()
    with pytest.raises(OptionError, match=f"alpha must be a finite number at least 0 and at most 1, got {alpha}"):
        interpolate(base, tuned, alpha)


# --------------------------------------------------------------------------------------------- interpolated runs


@pytest.fixture(scope="module")
def folder(tmp_path_factory, benchmark_root):
    return copy_tiny_folder(benchmark_root, tmp_path_factory.mktemp("wise") / "tiny")


@pytest.fixture(scope="module")
def tuned(folder, tmp_path_factory) -> Run:
    """A 3-step fine-tuning with a trainable head, so the head is interpolated as well as the tower."""
    cfg = TrainConfig(data=str(folder), max_steps=3, batch_size=16, loss=LossConfig(kind="ce"), head="trainable")
    return train(cfg, tmp_path_factory.mktemp("wise-run") / "run")


@pytest.fixture(scope="module")
def images(tuned) -> torch.Tensor:
    val = resolve_train_data(tuned.record.data.source).val
    return read_batch(val, eval_transform(tuned.classifier.preprocess)).images[:4]


@pytest.fixture(scope="module")
def zero_shot_logits(tuned, images) -> torch.Tensor:
    """The run's teacher, rebuilt from what run.json says."""
    meta = tuned.classifier
    teacher, _ = zero_shot_classifier(meta.model, meta.pretrained, meta.classes, meta.prompts, meta.templates)
    with torch.no_grad():
        return teacher(images)


def logits(run: Run, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return run.load_classifier()(images)


def test_alpha_zero_is_the_zero_shot_model_and_alpha_one_the_fine_tuned_one(tuned, images, zero_shot_logits, tmp_path):
    fine_tuned = logits(tuned, images)
    assert not torch.allclose(fine_tuned, zero_shot_logits, atol=1e-3)  # the run moved: the ends can be told apart
    at0 = write_wise_run(tuned, 0.0, tmp_path / "a0")
    torch.testing.assert_close(logits(open_run(at0.path), images), zero_shot_logits, atol=1e-6, rtol=1e-6)
    at1 = write_wise_run(tuned, 1.0, tmp_path / "a1")
    assert torch.equal(logits(open_run(at1.path), images), fine_tuned)
    best, written = load_file(str(tuned.best_weights)), load_file(str(at1.best_weights))
    assert set(written) == set(best) and all(torch.equal(written[k], best[k]) for k in best)


def test_a_wise_run_describes_itself(tuned, tmp_path):
    out = write_wise_run(tuned, 0.5, tmp_path / "wise", val_top1=0.75)
    record = open_run(out.path).record
    assert record.wise is not None
    assert (record.wise.alpha, record.wise.base) == (0.5, "zero-shot")
    assert record.wise.finetuned == str(tuned.path.resolve())
    assert record.wise.finetuned_sha256 == file_sha256(tuned.best_weights)
    assert record.status == "finished" and record.wise.val_top1 == 0.75 and record.best == tuned.record.best
    assert record.classifier == tuned.classifier
    # Halfway: the mean of the start and the fine-tuned weights; BatchNorm's counters are the fine-tuned run's.
    start, best, half = zero_shot_state(tuned), load_file(str(tuned.best_weights)), load_file(str(out.best_weights))
    assert set(start) == set(best) == set(half)
    for key, tensor in best.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(half[key], (start[key] + tensor) / 2, atol=1e-6, rtol=1e-6, msg=key)
        else:
            assert torch.equal(half[key], tensor), key
    assert torch.equal(start["head.log_logit_scale"], torch.tensor(tuned.classifier.logit_scale).log())


def test_writing_over_a_run_is_refused(tuned, tmp_path):
    before = tuned.best_weights.read_bytes()
    with pytest.raises(UserError, match="already holds a run: give a new --out"):
        write_wise_run(tuned, 0.5, tuned.path)
    other = write_wise_run(tuned, 0.5, tmp_path / "first")
    with pytest.raises(UserError, match="already holds a run"):
        write_wise_run(tuned, 0.2, other.path)
    assert tuned.best_weights.read_bytes() == before and open_run(other.path).record.wise.alpha == 0.5
    with pytest.raises(OptionError, match="alpha must be"):
        write_wise_run(tuned, 1.5, tmp_path / "bad-alpha")
    assert not (tmp_path / "bad-alpha").exists()


def test_a_base_run_must_be_compatible(tuned, tmp_path):
    check_compatible(tuned, tuned)
    classes = list(reversed(tuned.classifier.classes))
    other_classes = Run(
        tmp_path / "other",
        dataclasses.replace(tuned.record, classifier=dataclasses.replace(tuned.classifier, classes=classes)),
    )
    with pytest.raises(UserError, match="their class list differs"):
        check_compatible(tuned, other_classes)
    other_head = Run(
        tuned.path, dataclasses.replace(tuned.record, classifier=dataclasses.replace(tuned.classifier, head="linear"))
    )
    with pytest.raises(UserError, match="their head differs"):
        check_compatible(tuned, other_head)
    with pytest.raises(UserError, match="their class list differs"):
        write_wise_run(tuned, 0.5, tmp_path / "out", base=other_classes)
    assert not (tmp_path / "out").exists()
    # A compatible base run: (1 - alpha) theta + alpha theta is theta.
    same = write_wise_run(tuned, 0.5, tmp_path / "self", base=tuned)
    assert same.record.wise.base == str(tuned.path.resolve())
    best, written = load_file(str(tuned.best_weights)), load_file(str(same.best_weights))
    assert all(torch.equal(written[k], best[k]) for k in best)


def test_interpolating_in_place_keeps_the_fine_tuned_weights(tuned, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tuned.path, copy)
    original = (copy / "best.safetensors").read_bytes()
    before = (copy / "run.json").read_bytes()
    _, info = interpolate_in_place(open_run(copy), 0.3)
    assert (copy / "run.json").read_bytes() == before  # the caller (the trainer) records `info` in run.json
    assert (info.alpha, info.base, info.finetuned) == (0.3, "zero-shot", "finetuned.safetensors")
    assert (copy / "finetuned.safetensors").read_bytes() == original
    assert (copy / "best.safetensors").read_bytes() != original
    start, best, mixed = (
        zero_shot_state(tuned),
        load_file(str(tuned.best_weights)),
        load_file(str(copy / "best.safetensors")),
    )
    for key, tensor in best.items():
        expected = 0.7 * start[key] + 0.3 * tensor if tensor.is_floating_point() else tensor
        torch.testing.assert_close(mixed[key], expected, atol=1e-6, rtol=1e-6, msg=key)
    assert info.finetuned_sha256 == file_sha256(tuned.best_weights)
    # Again: it interpolates from the kept fine-tuned weights, not from the already interpolated ones.
    interpolate_in_place(open_run(copy), 0.3)
    assert (copy / "finetuned.safetensors").read_bytes() == original
    assert load_file(str(copy / "best.safetensors")).keys() == mixed.keys()
    assert all(torch.equal(load_file(str(copy / "best.safetensors"))[k], mixed[k]) for k in mixed)
    # And a new interpolated run from it starts from the fine-tuned weights too.
    at1 = write_wise_run(open_run(copy), 1.0, tmp_path / "a1")
    written = load_file(str(at1.best_weights))
    assert all(torch.equal(written[k], best[k]) for k in best)


@pytest.fixture(scope="module")
def random_head_run(folder, tmp_path_factory) -> Run:
    cfg = TrainConfig(
        data=str(folder), max_steps=1, batch_size=16, loss=LossConfig(kind="ce"), head="linear", head_init="random"
    )
    return train(cfg, tmp_path_factory.mktemp("random-head") / "run")


def test_a_random_linear_head_has_no_zero_shot_start(random_head_run, tmp_path):
    run = random_head_run
    assert run.classifier.head == "linear"
    with pytest.raises(OptionError) as info:
        zero_shot_state(run)
    assert str(info.value) == (
        f"{run.path}: its linear head started at random, not from the text classifier, so there is no zero-shot "
        "head to interpolate towards (interpolate with --base RUN instead)"
    )
    with pytest.raises(OptionError, match="started at random"):
        write_wise_run(run, 0.5, tmp_path / "wise")
    assert not (tmp_path / "wise").exists()


def test_a_refused_interpolation_in_place_changes_nothing(random_head_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(random_head_run.path, copy)
    before = sorted(p.name for p in copy.iterdir())
    with pytest.raises(OptionError, match="started at random"):
        interpolate_in_place(open_run(copy), 0.5)
    assert sorted(p.name for p in copy.iterdir()) == before


def test_a_run_written_by_wise_is_not_interpolated_again(tuned, tmp_path):
    once = write_wise_run(tuned, 0.5, tmp_path / "once")
    with pytest.raises(UserError, match=r"already a WiSE-FT interpolation \(alpha 0.5\) of .*: interpolate that run"):
        write_wise_run(once, 0.5, tmp_path / "twice")
    assert not (tmp_path / "twice").exists()


def test_an_unfinished_run_is_not_interpolated(tuned, tmp_path):
    running = Run(tuned.path, dataclasses.replace(tuned.record, status="interrupted"))
    with pytest.raises(UserError, match="has not finished training \\(interrupted\\)"):
        write_wise_run(running, 0.5, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_ends_are_exact_even_for_infinite_values():
    base, tuned = {"w": torch.tensor([-math.inf, 1.0])}, {"w": torch.tensor([2.0, math.inf])}
    assert torch.equal(interpolate(base, tuned, 0.0)["w"], base["w"])
    assert torch.equal(interpolate(base, tuned, 1.0)["w"], tuned["w"])
