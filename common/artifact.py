"""The artifact contract: what a classifier says about itself, as one typed object every stage reads and writes.

`ClassifierMeta` is the classifier: architecture, preprocessing, classes, prompts, templates, temperature and head
kind. A run directory stores it in run.json. `ArtifactSpec` is an exported artifact of it: the classifier plus its
precision, where it came from, its input and output names and which parts of the graph stay FP32. Export writes the
spec into the ONNX file's metadata and calib into its INT8 copy; a TensorRT engine carries it in a JSON sidecar
(with `EngineInfo`, what the engine is tied to); a Triton model carries it in its configuration's parameters (with a
labels file on the logits output); serve reads it back from any of them. A file without it, or with a malformed one,
is an ArtifactError naming the file.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from common.errors import OptionError, UserError
from common.files import atomic_write_json
from common.typed_json import from_json

ARTIFACT_FORMAT = "proreg-clip-artifact/1"
META_KEY = "proreg_clip"  # the ONNX metadata_props key that holds the spec as JSON
INPUT_NAME, OUTPUT_NAME = "image", "logits"
PRECISIONS = ("fp32", "fp16", "int8")
# INT8 Q/DQ schemes. s8s8: signed activations and weights, every zero point 0 (all TensorRT accepts). u8s8: unsigned
# activations with zero points and signed weights, ONNX Runtime's fast form on x86 CPUs (VNNI multiplies u8 x s8).
INT8_SCHEMES = ("s8s8", "u8s8")
# The exported ONNX files by name (model.<name>.onnx; fp32 is model.onnx) and the precision each holds.
ARTIFACT_PRECISIONS = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "int8-cpu": "int8"}
CPU_INT8 = "int8-cpu"  # the u8s8 copy, for CPUs; TensorRT builds engines from the others
DEFAULT_TEMPLATES = ("a photo of a {}",)


def onnx_file(folder: Path, name: str) -> Path:
    """Where export writes the ONNX file `name` (a key of ARTIFACT_PRECISIONS): model.onnx for fp32, else
    model.<name>.onnx."""
    return Path(folder) / ("model.onnx" if name == "fp32" else f"model.{name}.onnx")


def engine_file(onnx: Path) -> Path:
    """Where the TensorRT engine built from `onnx` goes: beside it, as <stem>.plan."""
    return Path(onnx).with_suffix(".plan")


@dataclass(frozen=True)
class ExportedFiles:
    """What an export made: the ONNX files and TensorRT engines, each keyed by its ARTIFACT_PRECISIONS name."""

    onnx: dict[str, Path] = field(default_factory=dict)
    engines: dict[str, Path] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.onnx or self.engines)


def exported_files(folder: Path) -> ExportedFiles:
    """The ONNX files and TensorRT engines an export left in `folder`."""
    onnx = {name: onnx_file(folder, name) for name in ARTIFACT_PRECISIONS if onnx_file(folder, name).is_file()}
    return ExportedFiles(onnx, {name: engine_file(path) for name, path in onnx.items() if engine_file(path).is_file()})


def check_templates(templates: list[str] | tuple[str, ...], where: str = "prompt templates") -> None:
    """Every template must put the class name where its one `{}` is; a template without one gives every class the
    same prompt, and other braces break formatting."""
    if not templates:
        raise UserError(f"{where}: none given")
    for template in templates:
        try:
            fields = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
            ok = fields == [""] and "{}" in template  # one bare {} (not {0}, {x}, {:>5} or an escaped {{}})
        except ValueError:  # a lone { or }
            ok = False
        if not ok:
            raise UserError(f"{where}: {template!r} needs exactly one {{}} for the class name and no other braces")


# On the normalized image features f: "text", tau f W^T with W the fixed class-prompt embeddings; "trainable", the
# class vectors (from W, renormalized each pass) and tau learned; "linear", a free f A^T + b (TeS). common.classifier.
HEAD_KINDS = ("text", "trainable", "linear")
HEAD_INITS = ("text", "random")  # where a linear head starts: the text classifier (tau W, b = 0) or at random


class ArtifactError(UserError):
    """An artifact (ONNX file, engine, sidecar) that is missing, unreadable or lacks our metadata."""


@dataclass
class ClassifierMeta:
    """Self-description of a CLIP classifier: enough to rebuild it and to feed it the right images and classes."""

    model: str  # as the user named it: "builtin", "ViT-B-32", "hf-hub:..."
    pretrained: str | None
    model_config: dict[str, Any]  # the open_clip architecture config: enough to rebuild the towers
    preprocess: dict[str, Any]  # size, mean, std, interpolation, resize_mode, ...
    classes: list[str]  # label strings, in logit order
    prompts: list[str]  # display names put into the templates
    templates: list[str]
    logit_scale: float
    head: str = "text"  # one of HEAD_KINDS

    @property
    def image_size(self) -> int:
        size = self.preprocess.get("size", 224)
        return int(size[0] if isinstance(size, (list, tuple)) else size)


@dataclass(frozen=True)
class Calibration:
    """Where an INT8 artifact's activation ranges came from."""

    method: str
    images: int  # images actually fed to the calibrator
    data: str  # a description of the source
    scheme: str = "s8s8"  # one of INT8_SCHEMES


@dataclass(frozen=True)
class ArtifactSpec:
    """One exported artifact of a classifier; see the module docstring."""

    classifier: ClassifierMeta
    precision: str = "fp32"  # one of PRECISIONS
    source_run: str | None = None  # the run directory it was exported from
    source_sha256: str | None = None  # of the run's weights file it was exported from
    exporter: str | None = None
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    fp32_parts: tuple[str, ...] = ()  # parts of the graph kept FP32 (common.graph_scopes.PARTS)
    fp32_nodes: tuple[str, ...] = ()  # the nodes they resolved to in this graph
    calibration: Calibration | None = None

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    def derive(self, **changes: Any) -> ArtifactSpec:
        """A copy with some fields changed: the FP16 or INT8 artifact made from this one."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(format=ARTIFACT_FORMAT, fp32_parts=list(self.fp32_parts), fp32_nodes=list(self.fp32_nodes))
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ArtifactSpec:
        if not isinstance(data, dict) or data.get("format") != ARTIFACT_FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise ArtifactError(
                f"{where}: not a {ARTIFACT_FORMAT} description (format {found!r}); "
                "files from older versions of proreg-clip cannot be read: export again"
            )
        spec = from_json(cls, data, where, ArtifactError)
        if spec.precision not in PRECISIONS or spec.classifier.head not in HEAD_KINDS:
            raise ArtifactError(
                f"{where}: precision {spec.precision!r} and head {spec.classifier.head!r} must be among "
                f"{', '.join(PRECISIONS)} and {', '.join(HEAD_KINDS)}: made by another version?"
            )
        return spec


def write_onnx_spec(path: Path, spec: ArtifactSpec) -> None:
    """Stores `spec` in the ONNX file's metadata (one JSON property), replacing what was there."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=json.dumps(spec.to_dict()))
    proto.producer_name = "proreg-clip"
    onnx.save(proto, str(path))  # external tensors keep pointing at their .data file


def check_external_data(proto: Any, path: Path) -> None:
    """Refuses an ONNX model whose tensors keep their data outside the model's own folder: an absolute location, a
    '..' anywhere in it, or a file (or folder) that resolves outside through a symlink. The path-traversal class of
    ONNX's CVEs (CVE-2022-25882, CVE-2024-27318 nested '..', CVE-2026-27489 symlinks): ONNX Runtime and OpenVINO
    would read what such an entry names, so it is checked (read_onnx_spec) before any runner opens the file."""
    import onnx

    folder = path.parent.resolve()
    for tensor in _tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        parts = location.replace("\\", "/").split("/")
        escapes = not location or location.startswith(("/", "\\")) or ".." in parts
        if escapes or not (path.parent / location).resolve().is_relative_to(folder):
            raise ArtifactError(
                f"{path}: tensor {tensor.name!r} keeps its data at {location!r}, outside the model's folder: refused "
                "(an ONNX file may use only data files beside it)"
            )


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of an ONNX graph: initializers, sparse ones, and those in node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            yield from ([attribute.t] if attribute.HasField("t") else [])
            yield from attribute.tensors
            for subgraph in [*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs]:
                yield from _tensors(subgraph)


def read_onnx_spec(path: Path) -> ArtifactSpec:
    """The spec written at export; ArtifactError for a missing file, a file that is not ONNX, or one we did not
    make."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"no such ONNX file: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise ArtifactError(f"cannot read ONNX file {path}: {str(err).splitlines()[0] if str(err) else err}") from err
    check_external_data(proto, path)
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise ArtifactError(f"{path} carries no {META_KEY!r} metadata (classes, preprocessing): export it with cli.py")
    return ArtifactSpec.from_dict(_json(props[META_KEY], f"{path} metadata"), f"{path} metadata")


@dataclass(frozen=True)
class EngineInfo:
    """What a TensorRT engine is tied to and how it was built; a .plan file carries none of this itself."""

    tensorrt_version: str
    gpu: str
    compute_capability: str
    min_batch: int
    opt_batch: int
    max_batch: int
    version_compatible: bool = False
    source_onnx: str = ""
    source_onnx_sha256: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # the builder options, for the record
    plan_sha256: str = ""  # of the .plan this sidecar describes ("" in sidecars written before it was recorded)


def sidecar_path(plan: Path) -> Path:
    return Path(plan).with_name(Path(plan).name + ".json")


def engine_sidecar(spec: ArtifactSpec, engine: EngineInfo) -> dict[str, Any]:
    """The JSON of an engine's sidecar."""
    return {"artifact": spec.to_dict(), "engine": asdict(engine)}


def write_engine_sidecar(plan: Path, spec: ArtifactSpec, engine: EngineInfo) -> None:
    atomic_write_json(sidecar_path(plan), engine_sidecar(spec, engine))


def read_engine_sidecar(plan: Path) -> tuple[ArtifactSpec, EngineInfo]:
    """The spec and engine facts beside `plan`; ArtifactError when the sidecar is missing or malformed."""
    path = sidecar_path(plan)
    if not path.is_file():
        raise ArtifactError(f"no sidecar {path.name} beside the engine {plan} (it holds classes and preprocessing)")
    data = _json(path.read_text(), str(path))
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: not an engine sidecar")
    spec = ArtifactSpec.from_dict(data.get("artifact"), f"{path}: artifact")
    return spec, from_json(EngineInfo, data.get("engine"), f"{path}: engine", ArtifactError)


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{where} is not valid JSON: {err}") from err


# Triton: how an artifact travels in a Triton model configuration. Export's model repository and serve's PyTriton
# model both write these; the Triton runner reads them back from the server (GET /v2/models/NAME/config).
TRITON_DEFAULT_MODEL = "proreg_clip"
TRITON_LABELS_FILE = "labels.txt"  # one class per line in logit order: the logits output's label_filename
TRITON_SPEC_PARAMETER = META_KEY  # the config parameter that holds the ArtifactSpec as JSON
TRITON_PREPROCESS_PREFIX = "preprocess."  # one parameter per preprocessing setting (JSON), for people and clients
TRITON_DEFAULT_MAX_BATCH = 64
_TRITON_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # Triton's (and PyTriton's) rule, no hidden folders


def check_triton_model_name(name: str, what: str = "Triton model name") -> None:
    if not _TRITON_NAME.fullmatch(name):
        raise OptionError(f"{what} {name!r}: use letters, digits, '.', '_' and '-' (not first: '.')")


def triton_parameters(spec: ArtifactSpec) -> dict[str, str]:
    """A Triton model configuration's `parameters` (string values) for `spec`: the whole spec, which the runner
    reads back, and each preprocessing setting on its own so that other clients need not parse the spec."""
    params = {f"{TRITON_PREPROCESS_PREFIX}{k}": json.dumps(v) for k, v in spec.classifier.preprocess.items()}
    params[TRITON_SPEC_PARAMETER] = json.dumps(spec.to_dict())
    return params


def spec_from_triton_parameters(params: Mapping[str, str], where: str) -> ArtifactSpec:
    """The spec in a Triton model configuration's parameters; ArtifactError when there is none or it is malformed."""
    if TRITON_SPEC_PARAMETER not in params:
        raise ArtifactError(
            f"{where} has no {TRITON_SPEC_PARAMETER!r} parameter (classes, preprocessing): serve a repository from "
            "`cli.py export --triton-repo`, or the artifact with `cli.py serve`"
        )
    return ArtifactSpec.from_dict(_json(params[TRITON_SPEC_PARAMETER], where), where)


def triton_labels(spec: ArtifactSpec) -> str:
    """The labels file's text: one class per line, in logit order."""
    broken = [c for c in spec.classes if not c.strip() or "\n" in c or "\r" in c]
    if broken:
        raise ArtifactError(f"class {broken[0]!r} cannot be a line of a Triton labels file")
    return "".join(f"{c}\n" for c in spec.classes)


def preferred_batch_sizes(max_batch: int) -> list[int]:
    """Dynamic batching's preferred sizes: the largest batch and its half and quarter (when whole)."""
    return sorted({max_batch // d for d in (4, 2, 1) if max_batch % d == 0})
