"""FLYP: its contrastive loss against numbers worked out by hand, the captions, and real runs: the text tower trains,
the exported graph is the image tower and the head rebuilt from it, WiSE-FT's ends are exact, resume is exact.

Hand-computed case (2 images, 2 captions, scale ln 3): image features f = [[1, 0], [0, 1]]; both images are of one
class, so both captions are the same, t = [[1, 0], [1, 0]] (the authors' ClipLoss has no class labels: the other
image's caption is a negative even though it is the same text).
  l = ln 3 * f t^T = [[ln 3, ln 3], [0, 0]]
  image -> text, targets [0, 1]: rows [ln 3, ln 3] and [0, 0]: CE = [ln 2, ln 2], mean 0.6931472
  text -> image, l^T = [[ln 3, 0], [ln 3, 0]]: CE = [-ln(3/4), -ln(1/4)] = [0.2876821, 1.3862944], mean 0.8369882
  contrastive_loss = (0.6931472 + 0.8369882) / 2 = 0.7650677
"""

import math
import os
import signal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from cli import app
from common.classifier import zero_shot_classifier
from common.errors import CheckpointError, OptionError
from common.run import FINETUNED_WEIGHTS, TEXT_TOWER_WEIGHTS, Run, open_run
from serve.onnxruntime_runner import OnnxRuntimeRunner
from tests.tiny_data import copy_tiny_folder
from train.config import TrainConfig
from train.losses import LossConfig, compute_loss, total_loss
from train.methods.base import LossInputs
from train.methods.flyp import caption_templates, captions, flyp_terms, load_text_tower, split_text_tower
from train.recipes import recipe_config
from train.trainer import TrainingInterrupted, train
from train.wise import write_wise_run, zero_shot_state
from workflows.export import export_run

IMAGES = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
CAPTIONS = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
SCALE = torch.tensor(math.log(3.0))


def test_the_contrastive_loss_on_the_hand_computed_case():
    labels = torch.tensor([4, 4])  # not read: the targets are each image's own caption
    terms = compute_loss(LossConfig(kind="flyp"), None, None, labels, contrastive=(IMAGES, CAPTIONS, SCALE))
    assert set(terms) == {"contrastive_loss", "image_to_text_ce", "text_to_image_ce", "logit_scale"}
    assert terms["image_to_text_ce"].item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert terms["text_to_image_ce"].item() == pytest.approx(0.8369882, abs=1e-6)
    assert terms["contrastive_loss"].item() == pytest.approx(0.7650677, abs=1e-6)
    assert total_loss(terms).item() == pytest.approx(0.7650677, abs=1e-6)  # the one *_loss term
    assert terms["logit_scale"].item() == pytest.approx(math.log(3.0), abs=1e-7)


def test_the_gradient_reaches_both_towers_and_the_scale():
    images, texts, scale = (x.clone().requires_grad_(True) for x in (IMAGES, CAPTIONS, SCALE))
    flyp_terms(None, LossInputs(None, None, torch.arange(len(images)), contrastive=(images, texts, scale)))[
        "contrastive_loss"
    ].backward()
    for grad in (images.grad, texts.grad, scale.grad):
        assert grad is not None and grad.abs().sum() > 0
    # d CE(s a, y) / d s = E_softmax(s a)[a] - a_y, with a a row of f t^T: image -> text rows [1, 1] and [0, 0] give
    # 0 and 0; text -> image rows [1, 0] (target 0) and [1, 0] (target 1), softmax [3/4, 1/4], give -1/4 and 3/4.
    # The loss halves the two directions' means: ((0 + 0) / 2 + (-1/4 + 3/4) / 2) / 2 = 1/8.
    assert scale.grad.item() == pytest.approx(0.125, abs=1e-6)


def test_a_loss_that_is_not_given_its_inputs_says_so():
    with pytest.raises(ValueError, match="flyp' needs image and caption features"):
        compute_loss(LossConfig(kind="flyp"), None, None, torch.tensor([0]))
    with pytest.raises(ValueError, match="'ce' needs the student's logits"):
        compute_loss(LossConfig(kind="ce"), None, None, torch.tensor([0]))


def test_each_image_draws_its_template_from_seed_epoch_and_index_alone():
    whole = caption_templates(3, 1, list(range(40)), 4)
    assert all(0 <= t < 4 for t in whole) and len(set(whole)) == 4  # every template gets drawn
    assert caption_templates(3, 1, [17, 5], 4) == [whole[17], whole[5]]  # whatever batch the image is in
    assert caption_templates(3, 2, list(range(40)), 4) != whole  # a new draw every epoch
    assert caption_templates(4, 1, list(range(40)), 4) != whole
    assert captions(["star", "red circle"], ["a photo of a {}", "a sketch of a {}"], [1, 0, 1], [0, 1, 1]) == [
        "a photo of a red circle",
        "a sketch of a star",
        "a sketch of a red circle",
    ]


def test_flyp_trains_a_text_head_only():
    assert TrainConfig(loss=LossConfig(kind="flyp")).head == "text"
    with pytest.raises(OptionError, match="head 'trainable' does not go with loss 'flyp', which trains a text head"):
        TrainConfig(loss=LossConfig(kind="flyp"), head="trainable")


# ------------------------------------------------------------------------------------------------------ real runs

TEMPLATES = ["a photo of a {}", "a drawing of a {}"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, benchmark_root):
    return copy_tiny_folder(benchmark_root, tmp_path_factory.mktemp("flyp") / "tiny")


def _config(folder, **kw) -> TrainConfig:
    # 54 training images, batch 16: 4 steps an epoch, so 6 steps cross an epoch boundary (a new draw of templates).
    return TrainConfig(
        data=str(folder), loss=LossConfig(kind="flyp"), templates=TEMPLATES, batch_size=16, log_every=1, **kw
    )


@pytest.fixture(scope="module")
def tuned(folder, tmp_path_factory) -> Run:
    """`train --loss flyp` for a few steps, through the CLI."""
    out = tmp_path_factory.mktemp("flyp-run") / "run"
    args = ["train", "--loss", "flyp", "--data", str(folder), "--max-steps", "3", "--batch-size", "16"]
    args += [arg for t in TEMPLATES for arg in ("--template", t)]
    done = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert done.exit_code == 0, done.output
    return open_run(out)


@pytest.mark.slow
def test_the_text_tower_trains_and_the_head_is_the_one_it_gives(tuned):
    assert tuned.record.train_config["loss"]["kind"] == "flyp" and tuned.classifier.head == "text"
    assert tuned.classifier.templates == TEMPLATES
    pretrained = load_text_tower(tuned.classifier.model, None)
    start, trained = pretrained.state_dict(), load_file(str(tuned.path / TEXT_TOWER_WEIGHTS))
    assert start.keys() == trained.keys() and not any(k.startswith("clip.visual") for k in trained)
    assert not all(torch.equal(start[k], trained[k]) for k in start)  # the text tower moved
    pretrained.load_state_dict(trained)
    weight, scale = pretrained.classifier(tuned.classifier.prompts, TEMPLATES)
    best = load_file(str(tuned.best_weights))
    image_tower_and_head, _ = split_text_tower(zero_shot_state(tuned))
    assert set(best) == set(image_tower_and_head)  # the artifact is the image tower and W, as for every method
    assert torch.equal(best["head.weight"], weight) and best["head.logit_scale"].item() == pytest.approx(scale)


@pytest.mark.slow
def test_the_exported_graph_agrees_with_torch(tuned):
    result = export_run(tuned.path, parity_n=32, log=lambda msg: None)
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        expected = tuned.load_classifier()(images).numpy()
    np.testing.assert_allclose(OnnxRuntimeRunner(result.onnx["fp32"]).infer(images), expected, atol=1e-4)
    assert all(p.passed for p in result.parity.values())


def _logits(run: Run, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return open_run(run.path).load_classifier()(images)


@pytest.mark.slow
def test_a_sweep_loads_the_text_tower_once_and_gives_each_alphas_model(tuned, tmp_path, monkeypatch):
    import train.wise

    base = zero_shot_state(tuned)  # the pretrained towers (one load of the text tower, for its weights)
    loads = []
    real = train.wise.load_text_tower
    monkeypatch.setattr(train.wise, "load_text_tower", lambda *a: loads.append(a) or real(*a))
    sweep = train.wise.Interpolation(tuned, base)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        swept = {alpha: sweep.classifier(alpha).eval()(images) for alpha in (0.25, 0.5, 0.75)}
    assert len(loads) == 1  # not once per alpha
    for alpha, logits in swept.items():  # the same model as interpolating at that alpha alone
        with torch.no_grad():
            alone = train.wise.wise_classifier(tuned, alpha, base).eval()(images)
        torch.testing.assert_close(logits, alone, atol=1e-6, rtol=0)


def test_wise_interpolates_both_towers_and_its_ends_are_exact(tuned, tmp_path):
    meta, images = tuned.classifier, torch.randn(4, 3, 64, 64)
    teacher, _ = zero_shot_classifier(meta.model, meta.pretrained, meta.classes, meta.prompts, meta.templates)
    with torch.no_grad():
        zero_shot = teacher(images)
    at0, at1 = write_wise_run(tuned, 0.0, tmp_path / "a0"), write_wise_run(tuned, 1.0, tmp_path / "a1")
    assert torch.equal(_logits(at0, images), zero_shot)
    best, written = load_file(str(tuned.best_weights)), load_file(str(at1.best_weights))
    assert set(written) == set(best) and all(torch.equal(written[k], best[k]) for k in best)
    # Halfway: the image tower is the mean, and the head is the one the mean of the text towers gives (not the mean
    # of the two heads).
    half = load_file(str(write_wise_run(tuned, 0.5, tmp_path / "a05").best_weights))
    start = zero_shot_state(tuned)
    for key in (k for k in best if k.startswith("visual.") and best[k].is_floating_point()):
        torch.testing.assert_close(half[key], (start[key] + best[key]) / 2, atol=1e-6, rtol=1e-6, msg=key)
    tower = load_text_tower(meta.model, None)
    tuned_tower = load_file(str(tuned.path / TEXT_TOWER_WEIGHTS))
    pretrained = tower.state_dict()
    tower.load_state_dict({k: (pretrained[k] + v) / 2 for k, v in tuned_tower.items()})
    weight, scale = tower.classifier(meta.prompts, meta.templates)
    torch.testing.assert_close(half["head.weight"], weight, atol=1e-6, rtol=0)
    assert half["head.logit_scale"].item() == pytest.approx(scale, rel=1e-6)
    assert not torch.allclose(half["head.weight"], (start["head.weight"] + best["head.weight"]) / 2, atol=1e-6)


@pytest.mark.slow
def test_wise_needs_the_tuned_text_tower_of_the_same_step(tuned, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("run.json", "best.safetensors"):
        (run_dir / name).write_bytes((tuned.path / name).read_bytes())
    with pytest.raises(CheckpointError, match=f"no {TEXT_TOWER_WEIGHTS}, the text tower FLYP tuned"):
        write_wise_run(open_run(run_dir), 0.5, tmp_path / "wise")
    tower = load_file(str(tuned.path / TEXT_TOWER_WEIGHTS))
    save_file(tower, str(run_dir / TEXT_TOWER_WEIGHTS), metadata={"step": "1"})
    with pytest.raises(CheckpointError, match=f"{TEXT_TOWER_WEIGHTS} is from step 1 but best.safetensors from step"):
        write_wise_run(open_run(run_dir), 0.5, tmp_path / "wise")
    assert not (tmp_path / "wise").exists()


@pytest.mark.slow
def test_the_wise_recipe_interpolates_in_place(folder, tmp_path):
    run = train(recipe_config("flyp+wise0.5", data=str(folder), max_steps=2, batch_size=16), tmp_path / "run")
    assert run.record.wise is not None and run.record.wise.alpha == 0.5 and (run.path / FINETUNED_WEIGHTS).is_file()
    again = write_wise_run(open_run(run.path), 1.0, tmp_path / "a1")  # from the kept fine-tuned weights
    kept, written = load_file(str(run.path / FINETUNED_WEIGHTS)), load_file(str(again.best_weights))
    assert all(torch.equal(written[k], kept[k]) for k in kept)


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(folder, tmp_path):
    cfg = _config(folder, max_steps=6)
    train(cfg, tmp_path / "straight")

    def press_ctrl_c(step, terms):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "resumed", on_step=press_ctrl_c)
    train(cfg, tmp_path / "resumed", resume=True)
    straight, resumed = open_run(tmp_path / "straight").metrics(), open_run(tmp_path / "resumed").metrics()
    assert [r["step"] for r in straight] == [r["step"] for r in resumed]
    for a, b in zip(straight, resumed, strict=True):
        for key in ("loss", "logit_scale", "val_top1"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), (a["step"], key)
    for name in ("last.safetensors", "best.safetensors", TEXT_TOWER_WEIGHTS):
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name
    a, b = (torch.load(tmp_path / run / "state.pt", weights_only=True)["text_tower"] for run in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
