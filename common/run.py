"""A run directory: the record training writes as run.json, and one typed view of the directory (`open_run`).

Layout: run.json (a RunRecord), best.safetensors (the classifier chosen on validation, or its WiSE-FT interpolation,
with the fine-tuned one kept as finetuned.safetensors), last.safetensors and state.pt (for resuming), metrics.jsonl
(one JSON object per logged step), data-files.txt.gz (the files it was trained and validated on). Every other
stage reads a run through `open_run`, once, and passes the Run on; nothing else parses run.json.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.artifact import ClassifierMeta
from common.builtin import BUILTIN
from common.errors import CheckpointError
from common.files import atomic_write_json, read_json_lines, staged_file
from common.provenance import file_sha256
from common.typed_json import from_json

if TYPE_CHECKING:  # torch-heavy; imported where a classifier is loaded, so the CLI starts fast
    from common.classifier import ClipClassifier

RUN_FORMAT = "proreg-clip-run/3"  # 3: the head is a module (head.weight, ...); WiSE-FT runs
RUN_FILE = "run.json"
BEST_WEIGHTS = "best.safetensors"
LAST_WEIGHTS = "last.safetensors"
FINETUNED_WEIGHTS = "finetuned.safetensors"  # a recipe with WiSE-FT keeps the un-interpolated model here
STATE_FILE = "state.pt"
# FLYP trains the text tower too: its weights at the best step (never interpolated: WiSE-FT reads them)
TEXT_TOWER_WEIGHTS = "text_tower.safetensors"
METRICS_FILE = "metrics.jsonl"
# The files a run was trained and validated on, as they resolved when training started: overlap checks read this,
# not the data on disk today (a dataset's split files may have come later). Lines "ROLE<TAB>JSON-string", gzip.
DATA_FILES = "data-files.txt.gz"
RUNS_ROOT = Path("runs")  # where fresh runs go, relative to the working directory
LATEST = "latest"  # RUNS_ROOT/latest: a symlink to the newest finished run


@dataclass(frozen=True)
class DataSource:
    """Where a run's training and validation data come from (data.specs resolves it): a training SPEC, an
    optional validation SPEC (else `val_fraction` of every class is held out, drawn with `seed`) and an optional
    class-names file."""

    train: str = BUILTIN
    val: str | None = None
    classnames: str | None = None
    val_fraction: float = 0.1
    seed: int = 0


@dataclass
class RunData:
    """The data a run was trained on, and how many of its images could not be read."""

    source: DataSource
    n_train: int = 0
    n_val: int = 0
    skipped_train_reads: int = 0  # counted at every read, so an image unreadable in 10 epochs counts 10 times
    skipped_val: int = 0  # in the latest validation pass
    files_sha256: str | None = None  # of DATA_FILES; None for runs made before it was recorded


@dataclass
class RunProgress:
    step: int = 0
    total_steps: int = 0
    epoch: int = 0


@dataclass
class Parallelism:
    """How the run's batches were split (torchrun): the optimizer sees `global_batch` = per-process batch x processes
    x accumulation images per step, whatever the split; a resume may use any process count that divides the
    per-process batch x processes."""

    world_size: int = 1
    per_process_batch: int = 0
    accum_steps: int = 1
    global_batch: int = 0


@dataclass
class BestCheckpoint:
    step: int = -1
    val_top1: float = -1.0


@dataclass(frozen=True)
class WiseInfo:
    """A WiSE-FT run: its weights are (1 - alpha) base + alpha fine-tuned."""

    alpha: float
    base: str  # "zero-shot" (the model the run started from) or the base run's directory
    finetuned: str  # the fine-tuned run's directory, or FINETUNED_WEIGHTS beside the interpolated weights
    finetuned_sha256: str
    val_top1: float | None = None  # the interpolated model's validation top-1 (best.val_top1 is the fine-tuned one's)


@dataclass
class RunRecord:
    """run.json: everything needed to rebuild, resume, export or audit the run."""

    classifier: ClassifierMeta
    train_config: dict[str, Any]  # the resolved training config; train/ owns its type (TrainConfig)
    data: RunData
    status: str = "running"  # running | interrupted | diverged | finished
    created: str = ""
    git_commit: str | None = None
    trainable_params: int = 0
    progress: RunProgress = field(default_factory=RunProgress)
    best: BestCheckpoint = field(default_factory=BestCheckpoint)
    teacher_cache: dict[str, Any] | None = None  # seconds and images of the one teacher pass, when cached
    train_seconds: float = 0.0
    resumed_at_step: int | None = None
    error: str | None = None  # why a diverged run stopped
    wise: WiseInfo | None = None  # set when best.safetensors is a WiSE-FT interpolation
    parallel: Parallelism = field(default_factory=Parallelism)

    def to_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> RunRecord:
        if data.get("format") != RUN_FORMAT:
            raise CheckpointError(
                f"{where}: not a {RUN_FORMAT} record (format {data.get('format')!r}); "
                "runs from older versions of proreg-clip cannot be read: train again"
            )
        return from_json(cls, data, where, CheckpointError)


def write_run_record(run_dir: Path, record: RunRecord) -> None:
    atomic_write_json(Path(run_dir) / RUN_FILE, record.to_dict())


def write_data_files(run_dir: Path, files: dict[str, list[str]]) -> str:
    """Writes DATA_FILES (role -> resolved paths, e.g. train and val) into `run_dir`; returns its SHA-256, which
    run.json records. Compact: 3.3 MB for ImageNet's 1.28 million training images (benchmarks/manifest_scale.py)."""
    with staged_file(Path(run_dir) / DATA_FILES) as tmp, gzip.open(tmp, "wt", encoding="ascii") as f:
        for role, paths in files.items():
            f.writelines(f"{role}\t{json.dumps(path)}\n" for path in paths)  # ASCII, any file name round-trips
    return file_sha256(Path(run_dir) / DATA_FILES)


def read_data_files(run: Run) -> dict[str, set[str]] | None:
    """The run's DATA_FILES as role -> set of resolved paths; None for a run made before they were recorded.
    CheckpointError when the file is missing, damaged or not the one run.json names."""
    expected = run.record.data.files_sha256
    if expected is None:
        return None
    path = run.path / DATA_FILES
    if not path.is_file() or file_sha256(path) != expected:
        raise CheckpointError(f"{path} is missing or changed since training (run.json records its SHA-256)")
    files: dict[str, set[str]] = {}
    try:
        with gzip.open(path, "rt", encoding="ascii") as f:
            for line in f:
                role, text = line.rstrip("\n").split("\t", 1)
                files.setdefault(role, set()).add(json.loads(text))
    except (OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from err
    return files


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file, in order; [] when there is none yet; a torn last line is skipped."""
    return read_json_lines(path)


@dataclass(frozen=True)
class Run:
    """A run directory, read once."""

    path: Path
    record: RunRecord

    @property
    def classifier(self) -> ClassifierMeta:
        return self.record.classifier

    @property
    def best_weights(self) -> Path:
        return self.path / BEST_WEIGHTS

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics_file)

    def load_classifier(self, weights: str = BEST_WEIGHTS) -> ClipClassifier:
        """Rebuilds the fine-tuned classifier from this directory alone."""
        from common.checkpoint import load_weights
        from common.classifier import classifier_from_state

        path = self.path / weights
        if not path.is_file():
            raise CheckpointError(f"no weights in run directory (expected {weights}): {self.path}")
        return classifier_from_state(self.classifier, load_weights(path), str(path))


def open_run(path: Path | str) -> Run:
    """The run in `path`; CheckpointError (one line) when it is not a readable run directory."""
    path = Path(path)
    file = path / RUN_FILE
    if not file.is_file():
        raise CheckpointError(f"not a run directory (no {RUN_FILE}): {path}")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"corrupt {file}: {err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt {file}: not a JSON object")
    return Run(path, RunRecord.from_dict(data, str(file)))
