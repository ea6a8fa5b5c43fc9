"""torchrun with 2 gloo processes on the CPU: the same steps and losses as one process with the same global batch, a
kill and resume, a dead rank ending the job instead of hanging it, and evaluation sharded over the ranks.

The model is a tiny ViT (no BatchNorm, whose statistics would depend on how a batch is split: SyncBatchNorm needs
CUDA). 53 training images in global micro-batches of 4 (2 per process, 2 accumulated per step) make an epoch end
in a micro-batch of one image, so one rank has nothing to train on in its last step.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.tiny_data import copy_tiny_folder
from tests.tiny_models import make_tiny_vit

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CLI = str(ROOT / "cli.py")
TIMEOUT = 240
LR = 1e-3


@pytest.fixture(scope="module")
def setting(tmp_path_factory, benchmark_root):
    root = tmp_path_factory.mktemp("ddp")
    data = copy_tiny_folder(benchmark_root, root / "data")
    next(iter(sorted((data / "circle").iterdir()))).unlink()  # 59 images: 53 to train on, 6 to validate
    model = make_tiny_vit(root / "vit")
    return root, data, f"local-dir:{model}"


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _train_args(setting, out: Path, per_process_batch: int, epochs: int = 2, loss: str = "proreg") -> list[str]:
    _, data, model = setting
    return [
        *("train", "--model", model, "--data", str(data), "--loss", loss, "--seed", "3"),
        *("--batch-size", str(per_process_batch), "--accum-steps", "2", "--epochs", str(epochs), "--lr", str(LR)),
        *("--log-every", "1", "--out", str(out)),
    ]


def _torchrun(n: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", CLI, *args]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def _assert_same_training(a: Path, b: Path) -> None:
    ours, theirs = _losses(a), _losses(b)
    assert [s for s, _ in ours] == [s for s, _ in theirs]
    for (step, x), (_, y) in zip(ours, theirs, strict=True):
        assert x == pytest.approx(y, rel=1e-4, abs=1e-6), f"step {step}"
    _assert_same_weights(load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors")))


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Equal up to summation order, the attention key biases left out: softmax is blind to them, so their true
    gradient is 0 and AdamW turns the rounding left there into steps of about lr, of either sign."""
    assert sorted(a) == sorted(b)
    diff = torch.cat([(_without_key_bias(k, a[k]) - _without_key_bias(k, b[k])).abs().flatten() for k in a])
    assert diff.max() < LR / 10


def _without_key_bias(name: str, tensor: torch.Tensor) -> torch.Tensor:
    if not name.endswith("attn.in_proj_bias"):  # [query; key; value] biases of nn.MultiheadAttention
        return tensor
    width = len(tensor) // 3
    return torch.cat([tensor[:width], tensor[2 * width :]])


@pytest.fixture(scope="module")
def one_process(setting):
    root = setting[0]
    _run([sys.executable, CLI, *_train_args(setting, root / "one", per_process_batch=4)], root)
    return root / "one"


def test_two_processes_take_the_steps_and_losses_of_one_with_the_same_global_batch(setting, one_process):
    root = setting[0]
    done = _run(_torchrun(2, *_train_args(setting, root / "two", per_process_batch=2)), root)
    assert done.stdout.count("run directory") + done.stderr.count("run directory") == 1  # rank 0 alone prints
    record = json.loads((root / "two" / "run.json").read_text())
    assert record["parallel"] == {"world_size": 2, "per_process_batch": 2, "accum_steps": 2, "global_batch": 8}
    assert record["progress"]["step"] == record["progress"]["total_steps"] == 14  # 2 epochs of 7 steps
    assert json.loads((one_process / "run.json").read_text())["progress"]["total_steps"] == 14
    _assert_same_training(root / "two", one_process)
    ours, theirs = (json.loads((d / "run.json").read_text())["best"] for d in (root / "two", one_process))
    assert ours == theirs  # sharded validation: the same accuracies, so the same best step


def _wait_for_checkpoint(run: Path, job: subprocess.Popen) -> None:
    deadline = time.time() + TIMEOUT
    while True:
        assert job.poll() is None, "the job ended before its first checkpoint"
        assert time.time() < deadline
        try:
            if json.loads((run / "run.json").read_text())["progress"]["step"] >= 7:
                return
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.02)


def _start_long_job(setting, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        _torchrun(2, *_train_args(setting, out, per_process_batch=2, epochs=40)),
        cwd=setting[0],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_job(job: subprocess.Popen) -> None:
    """SIGKILL to the launcher and its workers (torchrun starts each worker in a session of its own)."""
    for pid in [job.pid, *_children(job.pid)]:
        os.kill(pid, signal.SIGKILL)
    job.wait(timeout=60)


@pytest.mark.parametrize("resume_on", [2, 1])
def test_a_killed_two_process_run_resumes_on_any_process_count_that_splits_its_batch(setting, resume_on):
    root = setting[0]
    run = root / f"killed-{resume_on}"
    job = _start_long_job(setting, run)
    _wait_for_checkpoint(run, job)
    _kill_job(job)  # launcher and workers, without a chance to save
    status = json.loads((run / "run.json").read_text())["status"]
    assert status == "running"  # as the kill left it: a checkpoint, not a finished run
    args = ["train", "--resume", str(run)]
    cmd = _torchrun(resume_on, *args) if resume_on > 1 else [sys.executable, CLI, *args]
    _run(cmd, root)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished"
    assert record["progress"]["step"] == record["progress"]["total_steps"] == 280
    assert record["parallel"]["world_size"] == resume_on
    assert record["parallel"]["global_batch"] == 8  # 4 per process on one: the steps do not change
    steps = [s for s, _ in _losses(run)]
    assert steps == sorted(set(steps)) and steps[-1] == 280  # lines past the checkpoint written once


def test_resuming_on_a_process_count_that_does_not_split_the_batch_is_refused(setting, one_process):
    root = setting[0]
    run = root / "three"
    job = _start_long_job(setting, run)
    _wait_for_checkpoint(run, job)
    _kill_job(job)
    before = (run / "metrics.jsonl").read_bytes()
    done = subprocess.run(
        _torchrun(3, "train", "--resume", str(run)), cwd=root, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "global micro-batch of 4 images (2 per process x 2) does not split evenly" in done.stderr
    assert (run / "metrics.jsonl").read_bytes() == before


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_a_rank_that_dies_takes_the_job_down_instead_of_hanging_it(setting):
    root = setting[0]
    job = _start_long_job(setting, root / "dies")
    _wait_for_checkpoint(root / "dies", job)
    workers = _children(job.pid)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    start = time.time()
    try:
        code = job.wait(timeout=90)
    finally:
        if job.poll() is None:
            _kill_job(job)
    assert code != 0
    assert time.time() - start < 60
    assert "exitcode" in job.stderr.read()  # torchrun names the failed rank and its exit


def test_sharded_evaluation_equals_one_process(setting, one_process):
    root, data, _ = setting
    _run([sys.executable, CLI, "export", "--checkpoint", str(one_process), "--out", str(root / "onnx")], root)
    args = ["eval", "--checkpoint", str(one_process), "--data", f"ood:{data}", "--batch-size", "4"]
    args += ["--reference", str(root / "onnx" / "model.onnx"), "--max-drop", "1", "--allow-overlap"]
    _run([sys.executable, CLI, *args, "--out", str(root / "one.json")], root)
    _run(_torchrun(2, *args, "--out", str(root / "two.json")), root)
    one, two = (json.loads((root / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one.pop("throughput").keys() == two.pop("throughput").keys()
    for report in (one, two):
        for entry in report["agreement"].values():
            entry["max_abs_logit_diff"] = round(entry["max_abs_logit_diff"], 4)
        for scores in report["datasets"].values():  # softmax of logits from other batch compositions: float noise
            scores["ece"] = round(scores["ece"], 6)
    assert one == two
    assert one["datasets"][next(iter(one["datasets"]))]["n"] == 59


def test_flyp_on_two_processes_gathers_every_negative_and_trains_as_one(setting):
    """FLYP's contrastive loss over the whole global micro-batch on every rank (features gathered): the losses and
    steps of one process, the epoch's last micro-batch of one image leaving one rank a placeholder."""
    root = setting[0]
    _run([sys.executable, CLI, *_train_args(setting, root / "flyp-one", 4, loss="flyp")], root)
    _run(_torchrun(2, *_train_args(setting, root / "flyp-two", 2, loss="flyp")), root)
    _assert_same_training(root / "flyp-two", root / "flyp-one")
    towers = [
        torch.load(d / "state.pt", weights_only=True)["text_tower"] for d in (root / "flyp-two", root / "flyp-one")
    ]
    _assert_same_weights(*towers)


GATHER_CHECK = """
import sys
import torch, torch.distributed as dist, torch.nn.functional as F
from common.distributed import Ranks
from train.methods.base import LossInputs
from train.methods.flyp import flyp_terms
from train.trainer import micro_batch_wide

dist.init_process_group("gloo")
ranks = Ranks(dist.get_rank(), dist.get_world_size())
n = int(sys.argv[1])
torch.manual_seed(0)
x, t = torch.randn(n, 8), torch.randn(n, 8)
w_image, w_text = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4, requires_grad=True)
log_scale = torch.tensor(2.0, requires_grad=True)
params = [w_image, w_text, log_scale]
def contrastive(features):
    return flyp_terms(None, LossInputs(None, None, torch.arange(len(features[0])), contrastive=features))


one = contrastive((F.normalize(x @ w_image, dim=-1), F.normalize(t @ w_text, dim=-1), log_scale.exp()))
expected = torch.autograd.grad(one["contrastive_loss"], params)
share = list(range(ranks.rank, n, ranks.world)) or [0]  # an empty share feeds a placeholder row, left out
rows = len(range(ranks.rank, n, ranks.world))
mine = (F.normalize(x[share] @ w_image, dim=-1), F.normalize(t[share] @ w_text, dim=-1), log_scale.exp())
wide, count = micro_batch_wide(ranks, mine, rows)
loss = contrastive(wide)["contrastive_loss"]
grads = torch.autograd.grad(loss * ranks.world, params, allow_unused=True)  # optimizer_step's scale, count = n
for p, g, want in zip(params, grads, expected):
    g = torch.zeros_like(p) if g is None else g.clone()
    dist.all_reduce(g)  # DDP's average
    assert torch.allclose(g / ranks.world, want, atol=1e-6), (ranks.rank, g / ranks.world, want)
assert count == n and torch.allclose(loss, one["contrastive_loss"], atol=1e-6)
dist.destroy_process_group()
"""


@pytest.mark.parametrize("images", [5, 2])
def test_gathered_contrastive_features_give_one_process_gradient(tmp_path, images):
    """micro_batch_wide on 3 gloo processes (shares of 2, 2, 1 images, or 1, 1 and a placeholder): the loss one
    process computes on all the images, and once DDP averages, its gradient for both towers and the scale."""
    script = tmp_path / "gather_check.py"
    script.write_text(GATHER_CHECK)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3", str(script)]
    _run([*cmd, str(images)], tmp_path)
