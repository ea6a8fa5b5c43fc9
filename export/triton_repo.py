"""A Triton Inference Server model repository from the exported artifacts (`cli.py export --triton-repo DIR`).

Triton's standard layout, one model per artifact:

    DIR/<name>/config.pbtxt       platform onnxruntime_onnx; batch dimension dynamic (max_batch_size, dims without
    DIR/<name>/labels.txt         it); dynamic batching with preferred sizes; an instance group; the artifact spec
    DIR/<name>/1/model.onnx       and its preprocessing as parameters; labels.txt on the logits output, so Triton's
                                  classification extension answers with class names
    DIR/<name>_fp16/, DIR/<name>_int8/    the FP16 and INT8 copies, when exported
    DIR/<name>_trt/1/model.plan   platform tensorrt_plan (KIND_GPU), where TensorRT built an engine (<name>_fp16_trt...)

The configuration is tritonclient's own `ModelConfig` protobuf written in text format, so a field Triton does not
know cannot be written. What it says about the artifact (parameter names, labels file) is common.artifact's, which
the Triton runner reads back from any server. Each model folder is written under a temporary name and renamed into
place. A folder that holds another model (another run's weights, another precision, or not a model of ours) is
refused before anything is written (`check_triton_repo`); exporting the same run again replaces its own models.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from common.artifact import (
    ARTIFACT_PRECISIONS,
    TRITON_DEFAULT_MAX_BATCH,
    TRITON_DEFAULT_MODEL,
    TRITON_LABELS_FILE,
    ArtifactError,
    ArtifactSpec,
    check_triton_model_name,
    preferred_batch_sizes,
    read_engine_sidecar,
    read_onnx_spec,
    spec_from_triton_parameters,
    triton_labels,
    triton_parameters,
)
from common.errors import OptionError, UserError, check_number
from common.files import check_creatable, no_space_named, share_like_umask, writable_dir

CONFIG_FILE = "config.pbtxt"
VERSION = "1"  # the one model version written
PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "plan": ("tensorrt_plan", "model.plan")}
VERSION_COMPATIBLE_FLAG = "--backend-config=tensorrt,version-compatible=true"  # Triton loads such engines only with it


class TritonRepoError(UserError):
    """A repository folder that holds another model, or one that cannot be written."""


@dataclass(frozen=True)
class TritonRepoOptions:
    name: str = TRITON_DEFAULT_MODEL  # the FP32 ONNX model's name; the others add their precision and _trt
    max_batch_size: int = TRITON_DEFAULT_MAX_BATCH  # ONNX models; an engine's is its profile's largest batch
    gpu: bool = False  # ONNX models in a KIND_GPU instance group (engines always are)

    def __post_init__(self) -> None:
        check_triton_model_name(self.name, "--triton-name")
        check_number("--triton-max-batch", self.max_batch_size, 1)


def model_name(base: str, artifact: str, kind: str) -> str:
    """`base` for the FP32 ONNX model, `base_<artifact>` for its copies (int8-cpu as int8_cpu), `_trt` appended
    for engines."""
    copy = "" if artifact == "fp32" else "_" + artifact.replace("-", "_")
    return base + copy + ("_trt" if kind == "plan" else "")


def model_config_pb2() -> ModuleType:
    """tritonclient's ModelConfig protobuf module; TritonRepoError saying how to install it when missing."""
    try:
        import tritonclient.grpc.model_config_pb2 as pb
    except ImportError as err:
        raise TritonRepoError(
            f"--triton-repo needs tritonclient's model-config protobuf ({err}): pip install 'tritonclient[grpc]'"
        ) from err
    return pb


def check_triton_repo(
    repo: Path, options: TritonRepoOptions, spec: ArtifactSpec, precisions: list[str], engine_min_batch: int = 1
) -> None:
    """Refuses, before anything is exported, a repository where one of the models this export would write (ONNX
    and engine, for each artifact of `precisions`: keys of common.artifact.ARTIFACT_PRECISIONS) is already a folder
    holding another model than `spec`'s (the FP32 export of the run) in that precision; and engines that could not
    take a batch of one."""
    model_config_pb2()
    check_engine_min_batch(engine_min_batch)
    check_creatable(repo, "--triton-repo folder")
    for artifact in precisions:
        derived = spec.derive(precision=ARTIFACT_PRECISIONS[artifact])
        for kind in PLATFORMS:
            _check_replaceable(repo / model_name(options.name, artifact, kind), derived)


def check_engine_min_batch(min_batch: int) -> None:
    if min_batch != 1:
        raise OptionError(f"--min-batch {min_batch}: a Triton model takes batches from 1 up; build engines from 1")


def same_model(a: ArtifactSpec, b: ArtifactSpec) -> bool:
    """Whether two specs describe the same model: the same classifier exported in the same precision from the same
    weights file (a calibration or exporter may differ: the re-export replaces it)."""
    return a.source_sha256 == b.source_sha256 and a.precision == b.precision and a.classifier == b.classifier


def read_model_spec(folder: Path) -> ArtifactSpec:
    """The spec in a model folder's config.pbtxt; ArtifactError when there is no such file or it is not ours."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    path = folder / CONFIG_FILE
    try:
        config = text_format.Parse(path.read_text(), pb.ModelConfig())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as err:
        raise ArtifactError(f"cannot read {path}: {str(err).splitlines()[0] if str(err) else err}") from err
    return spec_from_triton_parameters({k: v.string_value for k, v in config.parameters.items()}, str(path))


def _check_replaceable(folder: Path, spec: ArtifactSpec) -> None:
    if not folder.exists() and not folder.is_symlink():
        return
    try:
        held = read_model_spec(folder)
    except ArtifactError as err:
        raise TritonRepoError(f"{folder} already holds something else ({err}): choose another --triton-repo") from err
    if not same_model(held, spec):
        raise TritonRepoError(
            f"{folder} already holds another model ({held.precision}, from {held.source_run or held.classifier.model})"
            ": choose another --triton-repo or --triton-name"
        )


def model_config(name: str, spec: ArtifactSpec, kind: str, max_batch_size: int, gpu: bool) -> Any:
    """The Triton ModelConfig protobuf of one artifact."""
    pb = model_config_pb2()
    platform, filename = PLATFORMS[kind]
    config = pb.ModelConfig(name=name, platform=platform, max_batch_size=max_batch_size)
    config.default_model_filename = filename
    size = spec.classifier.image_size
    config.input.add(name=spec.input_name, data_type=pb.TYPE_FP32, dims=[3, size, size])
    out = config.output.add(name=spec.output_name, data_type=pb.TYPE_FP32, dims=[len(spec.classes)])
    out.label_filename = TRITON_LABELS_FILE
    config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes(max_batch_size))
    group = pb.ModelInstanceGroup.KIND_GPU if gpu else pb.ModelInstanceGroup.KIND_CPU
    config.instance_group.add(kind=group, count=1)
    for key, value in triton_parameters(spec).items():
        config.parameters[key].string_value = value
    return config


def write_triton_repo(
    repo: Path, options: TritonRepoOptions, onnx: dict[str, Path], engines: dict[str, Path]
) -> dict[str, Path]:
    """One model folder per ONNX file and engine (precision -> file); returns model name -> folder."""
    writable_dir(repo, "--triton-repo folder")
    written = {}
    for precision, path in onnx.items():
        name, spec = model_name(options.name, precision, "onnx"), read_onnx_spec(path)
        config = model_config(name, spec, "onnx", options.max_batch_size, options.gpu)
        files = {path: "model.onnx"}
        data = path.with_name(path.name + ".data")  # external weights keep the name the graph records
        if data.exists():
            files[data] = data.name
        written[name] = _write_model(repo / name, config, spec, files)
    for precision, plan in engines.items():
        spec, engine = read_engine_sidecar(plan)
        check_engine_min_batch(engine.min_batch)
        name = model_name(options.name, precision, "plan")
        config = model_config(name, spec, "plan", engine.max_batch, gpu=True)
        written[name] = _write_model(repo / name, config, spec, {plan: "model.plan"})
    return written


def server_command(repo: Path, engines: dict[str, Path]) -> str:
    """The tritonserver command that serves `repo`: with a version-compatible engine among `engines`, Triton's
    TensorRT backend loads it only when told to trust it (`--backend-config=tensorrt,version-compatible=true`,
    triton-inference-server/tensorrt_backend)."""
    command = f"tritonserver --model-repository {repo}"
    if any(read_engine_sidecar(plan)[1].version_compatible for plan in engines.values()):
        command += f" {VERSION_COMPATIBLE_FLAG}"
    return command


def _write_model(folder: Path, config: Any, spec: ArtifactSpec, files: dict[Path, str]) -> Path:
    """Writes a model folder under a temporary name beside `folder` and renames it into place (replacing the same
    model exported before); `files`: source -> name in the version folder."""
    from google.protobuf import text_format

    _check_replaceable(folder, spec)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    old = folder.with_name(f".{folder.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
    try:
        with no_space_named(folder):
            (tmp / VERSION).mkdir()
            (tmp / CONFIG_FILE).write_text(text_format.MessageToString(config))
            (tmp / TRITON_LABELS_FILE).write_text(triton_labels(spec))
            for src, name in files.items():
                shutil.copyfile(src, tmp / VERSION / name)
        share_like_umask(tmp, directory=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
    except BaseException:
        if old.exists() and not folder.exists():
            old.rename(folder)  # put the previous export back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return folder
