"""`eval`: which model the options name and how it runs, its reference, and the evaluation of both (serve) on the
sets asked for (data), refusing sets the model was trained on (train meets serve)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.artifact import TRITON_DEFAULT_MODEL
from common.builtin import BUILTIN
from common.errors import OptionError, check_number
from common.progress import ProgressHook
from data.specs import ZeroShotClasses, resolve_eval_sets, zero_shot_classes
from serve.backends import (
    ZeroShotModel,
    backend_for,
    backends_running,
    check_options,
    default_backend,
    open_runner,
)
from serve.evaluate import evaluate, evaluate_against
from serve.metrics import check_max_drop
from serve.report import Report
from serve.runner import Runner
from workflows.overlap import check_not_trained_on

ZERO_SHOT = "zero-shot"  # eval's mode for --zero-shot (a pretrained model, not a backend)


@dataclass(frozen=True)
class ModelChoice:
    """The model eval scores: a backend (or ZERO_SHOT) and what it runs, with how to run it."""

    backend: str
    source: str
    pretrained: str | None = None  # a zero-shot model's weights
    inference_precision: str | None = None  # for a backend that offers a choice
    provider: str | None = None  # an execution provider, for a backend that offers one
    timeout: float | None = None  # seconds to wait for each answer of a Triton server


def choose_model(given: dict[str, Any], model: str | None, pretrained: str | None, how: dict[str, Any]) -> ModelChoice:
    """The one model of `given` (--checkpoint, --zero-shot, --onnx, --engine, --triton by flag: the value or None),
    --model (a Triton model's name), --pretrained (a zero-shot model's weights) and `how` it runs (--runtime,
    --inference-precision, --provider, --timeout), each refused where it does not apply."""
    chosen = [(flag, str(source)) for flag, source in given.items() if source]
    if len(chosen) != 1:
        raise OptionError(f"give exactly one of {', '.join(given)}")
    if model is not None and not given["--triton"]:
        raise OptionError("--model names a model on a Triton server: only with --triton")
    if pretrained is not None and not given["--zero-shot"]:
        raise OptionError("--pretrained names the weights of the --zero-shot model: only with --zero-shot")
    if how.get("timeout") is not None:
        if not given["--triton"]:
            raise OptionError("--timeout is how long to wait for a Triton server's answers: only with --triton")
        check_number("--timeout", how["timeout"], 0, above=True)
    flag, source = chosen[0]
    if flag == "--triton":
        from serve.triton_runner import model_url

        source = model_url(source, model or TRITON_DEFAULT_MODEL)
    named = file_backend("--runtime", how["runtime"], source if flag == "--onnx" else None)
    # A file given as ONNX or as an engine runs on the backend that runs its kind by default, whatever its name; a
    # --checkpoint is a run directory (or builtin) for the default backend.
    kinds = {"--onnx": ".onnx", "--engine": ".plan"}
    if flag == "--zero-shot":
        backend = ZERO_SHOT
    elif flag in kinds:
        backend = named or backends_running(kinds[flag])[0]
    else:
        backend = backend_for(source) if flag == "--triton" else default_backend()
    check_options(default_backend() if backend == ZERO_SHOT else backend, how["inference_precision"], how["provider"])
    return ModelChoice(backend, source, pretrained, how["inference_precision"], how["provider"], how.get("timeout"))


def file_backend(option: str, name: str | None, source: str | None) -> str | None:
    """The backend `option` (--runtime, --reference-runtime) names for the model file `source`, one of those that can
    run a file of its kind; None: not named."""
    from common.errors import check_choice

    if name is None:
        return None
    suffix = Path(source).suffix.lower() if source else ""
    offered = backends_running(suffix) if suffix else []
    if len(offered) < 2:
        what = "--onnx FILE.onnx" if option == "--runtime" else "--reference FILE.onnx"
        raise OptionError(f"{option} chooses how a model file runs, where several backends can: only with {what}")
    check_choice(option, name, offered)
    return name


def check_gate(max_drop: float | None, reference: str | None) -> None:
    if max_drop is not None and not reference:
        raise OptionError("--max-drop needs --reference: the drop is measured against it")
    if max_drop is not None:
        check_max_drop(max_drop, "--max-drop")


def open_runners(
    choice: ModelChoice, reference: str | None, ref_backend: str | None, data: list[str], progress: ProgressHook
) -> tuple[Runner, Runner | None]:
    """The model eval scores and its reference (None: none). A zero-shot model (--zero-shot; builtin for --checkpoint
    or --reference) is made for the classes of the model it is compared with, else for those of the data (a suite's
    own classes and templates); `progress` shows its text classifier being built."""

    def classes_of(other: Runner) -> ZeroShotClasses:
        meta = other.spec.classifier
        return ZeroShotClasses(list(meta.classes), list(meta.prompts), list(meta.templates))

    backend, source = choice.backend, choice.source
    if not (backend == ZERO_SHOT or (source == BUILTIN and backend == default_backend())):
        runner = open_runner(
            source,
            backend,
            inference_precision=choice.inference_precision,
            provider=choice.provider,
            timeout=choice.timeout,
        )
        if reference == BUILTIN:
            return runner, open_runner(ZeroShotModel(BUILTIN, None, classes_of(runner)), progress=progress)
        return runner, open_runner(reference, ref_backend) if reference else None
    fixed = open_runner(reference, ref_backend) if reference and reference != BUILTIN else None
    classes = classes_of(fixed) if fixed else zero_shot_classes(data)
    runner = open_runner(ZeroShotModel(source, choice.pretrained, classes), progress=progress)
    if reference == BUILTIN:
        return runner, open_runner(ZeroShotModel(BUILTIN, None, classes), progress=progress)
    return runner, fixed


def evaluate_model(
    runner: Runner,
    reference: Runner | None,
    data: list[str],
    max_drop: float | None,
    batch: tuple[int, int],
    allow_overlap: bool,
    progress: ProgressHook,
) -> Report:
    """`runner` (against `reference`, gated at `max_drop` pp when given) on the sets `data` names, in batches of
    batch[0] read by batch[1] workers; sets holding its training images refused unless `allow_overlap`."""
    sets = resolve_eval_sets(data, classes=runner.spec.classes)
    check_not_trained_on(runner.spec, sets, allow=allow_overlap)
    if reference:
        return evaluate_against(runner, reference, sets, max_drop, batch[0], batch[1], progress)
    report, _ = evaluate(runner, sets, batch[0], batch[1], progress)
    return report
