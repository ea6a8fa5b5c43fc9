"""The artifact contract: the spec in an ONNX file's metadata and in an engine's sidecar; one-line errors."""

import json
from dataclasses import fields

import numpy as np
import onnx
import pytest

from common.artifact import (
    ARTIFACT_FORMAT,
    META_KEY,
    ArtifactError,
    ArtifactSpec,
    Calibration,
    ClassifierMeta,
    EngineInfo,
    read_engine_sidecar,
    read_onnx_spec,
    sidecar_path,
    write_engine_sidecar,
    write_onnx_spec,
)
from common.errors import UserError
from tests.graphs import save_classifier_graph

CONFIG = {"embed_dim": 6, "vision_cfg": {"image_size": 4, "layers": [1, 1], "width": 8}}
PREPROCESS = {"size": 4, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "interpolation": "bicubic"}


def _spec() -> ArtifactSpec:
    meta = ClassifierMeta(
        "toy", "laion2b", CONFIG, PREPROCESS, list("abcde"), ["ay", "bee", "c", "d", "e"], ["a {}", "the {}"], 42.5
    )
    return ArtifactSpec(
        classifier=meta,
        precision="int8",
        source_run="runs/toy",
        source_sha256="ab" * 32,
        exporter="hand-built",
        fp32_parts=("patch_embed", "head"),
        fp32_nodes=("node_conv1", "node_div", "node_matmul"),
        calibration=Calibration(method="percentile", images=64, data="builtin (training split)"),
    )


ENGINE = EngineInfo(
    "10.13.0",
    "NVIDIA A10",
    "8.6",
    min_batch=1,
    opt_batch=4,
    max_batch=8,
    version_compatible=True,
    source_onnx="model.onnx",
    source_onnx_sha256="cd" * 32,
    options={"workspace_gb": 2, "fp16": True},
)


@pytest.fixture
def onnx_path(tmp_path):
    return save_classifier_graph(tmp_path / "model.onnx")


def _with_metadata(path, value: str | None):
    """Rewrites the ONNX file's metadata to hold `value` under our key (or nothing), bypassing write_onnx_spec."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    if value is not None:
        model.metadata_props.add(key=META_KEY, value=value)
    onnx.save(model, str(path))
    return path


def _one_line_error(call, *args, match: str) -> str:
    with pytest.raises(ArtifactError, match=match) as info:
        call(*args)
    assert isinstance(info.value, UserError)  # so the CLI prints it as one line, exit status 2
    assert "\n" not in str(info.value)
    return str(info.value)


def test_onnx_spec_round_trip(onnx_path):
    spec = _spec()
    write_onnx_spec(onnx_path, spec)
    back = read_onnx_spec(onnx_path)
    assert back == spec
    assert isinstance(back.fp32_parts, tuple) and isinstance(back.fp32_nodes, tuple)
    assert isinstance(back.calibration, Calibration) and isinstance(back.classifier, ClassifierMeta)
    assert back.classes == list("abcde") and back.classifier.image_size == 4
    # The graph itself is untouched, and the spec is one JSON property that names the format.
    model = onnx.load(str(onnx_path))
    assert [o.name for o in model.graph.output] == ["logits"] and len(model.graph.node) == 17
    (prop,) = model.metadata_props
    assert prop.key == META_KEY and json.loads(prop.value)["format"] == ARTIFACT_FORMAT


def test_onnx_spec_defaults_round_trip_and_rewriting_replaces(onnx_path):
    spec = _spec()
    plain = ArtifactSpec(classifier=spec.classifier)
    write_onnx_spec(onnx_path, spec)
    write_onnx_spec(onnx_path, plain)  # replaces, does not add a second property
    assert read_onnx_spec(onnx_path) == plain
    assert plain.calibration is None and plain.fp32_parts == () and plain.precision == "fp32"
    assert len(onnx.load(str(onnx_path)).metadata_props) == 1


def test_derive_changes_only_what_it_is_given():
    spec = _spec()
    derived = spec.derive(precision="fp16", fp32_nodes=("node_matmul",))
    assert derived.precision == "fp16" and derived.fp32_nodes == ("node_matmul",)
    changed = {f.name for f in fields(ArtifactSpec) if getattr(derived, f.name) != getattr(spec, f.name)}
    assert changed == {"precision", "fp32_nodes"}
    assert spec.precision == "int8" and spec.fp32_nodes == ("node_conv1", "node_div", "node_matmul")  # not mutated
    assert spec.derive() == spec
    with pytest.raises(TypeError):
        spec.derive(no_such_field=1)


def test_engine_sidecar_round_trip(tmp_path):
    plan = tmp_path / "model.fp16.plan"
    plan.write_bytes(b"\x00")
    spec = _spec().derive(precision="fp16", calibration=None)
    write_engine_sidecar(plan, spec, ENGINE)
    assert sidecar_path(plan) == tmp_path / "model.fp16.plan.json" and sidecar_path(plan).is_file()
    assert read_engine_sidecar(plan) == (spec, ENGINE)
    assert set(json.loads(sidecar_path(plan).read_text())) == {"artifact", "engine"}


def test_missing_onnx_file(tmp_path):
    _one_line_error(read_onnx_spec, tmp_path / "none.onnx", match="no such ONNX file: .*none.onnx")
    _one_line_error(read_onnx_spec, tmp_path, match="no such ONNX file")  # a directory is not a file either


def test_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _one_line_error(read_onnx_spec, path, match=r"cannot read ONNX file .*random\.onnx")


def test_onnx_without_our_metadata(onnx_path):
    message = _one_line_error(read_onnx_spec, onnx_path, match="carries no 'proreg_clip' metadata")
    assert str(onnx_path) in message


def test_metadata_that_is_not_json(onnx_path):
    _with_metadata(onnx_path, "{'format': not json")
    _one_line_error(read_onnx_spec, onnx_path, match="model.onnx metadata is not valid JSON")


@pytest.mark.parametrize(
    ("change", "found"),
    [({"format": "proreg-clip-artifact/0"}, "'proreg-clip-artifact/0'"), ({"format": None}, "None")],
)
def test_metadata_of_another_format(onnx_path, change, found):
    data = {**_spec().to_dict(), **change}
    _with_metadata(onnx_path, json.dumps({k: v for k, v in data.items() if v is not None}))
    _one_line_error(
        read_onnx_spec, onnx_path, match=f"metadata: not a {ARTIFACT_FORMAT} description \\(format {found}\\)"
    )


def test_metadata_that_is_not_an_object(onnx_path):
    _with_metadata(onnx_path, json.dumps(["format", ARTIFACT_FORMAT]))
    _one_line_error(read_onnx_spec, onnx_path, match=r"not a proreg-clip-artifact/1 description \(format None\)")


def test_metadata_whose_classifier_lacks_a_field(onnx_path):
    data = _spec().to_dict()
    del data["classifier"]["classes"]
    _with_metadata(onnx_path, json.dumps(data))
    _one_line_error(read_onnx_spec, onnx_path, match="metadata: classifier.classes is missing")


def test_metadata_without_a_classifier(onnx_path):
    data = _spec().to_dict()
    del data["classifier"]
    _with_metadata(onnx_path, json.dumps(data))
    _one_line_error(read_onnx_spec, onnx_path, match="metadata: classifier is missing")


def test_metadata_whose_calibration_lacks_a_field(onnx_path):
    data = _spec().to_dict()
    del data["calibration"]["images"]
    _with_metadata(onnx_path, json.dumps(data))
    _one_line_error(read_onnx_spec, onnx_path, match="metadata: calibration.images is missing")


def test_missing_sidecar(tmp_path):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\x00")
    _one_line_error(read_engine_sidecar, plan, match=r"no sidecar model\.plan\.json beside the engine .*model\.plan")


def test_sidecar_that_is_not_json(tmp_path):
    plan = tmp_path / "model.plan"
    sidecar_path(plan).write_text("artifact: yaml?")
    _one_line_error(read_engine_sidecar, plan, match=r"model\.plan\.json is not valid JSON")


def test_sidecar_that_is_not_an_object(tmp_path):
    plan = tmp_path / "model.plan"
    sidecar_path(plan).write_text("[1, 2]")
    _one_line_error(read_engine_sidecar, plan, match=r"model\.plan\.json: not an engine sidecar")


@pytest.mark.parametrize("missing", ["gpu", "max_batch"])
def test_sidecar_whose_engine_lacks_fields(tmp_path, missing):
    plan = tmp_path / "model.plan"
    write_engine_sidecar(plan, _spec(), ENGINE)
    data = json.loads(sidecar_path(plan).read_text())
    del data["engine"][missing]
    sidecar_path(plan).write_text(json.dumps(data))
    _one_line_error(read_engine_sidecar, plan, match=f"model\\.plan\\.json: engine: {missing} is missing")


def test_sidecar_without_engine_or_artifact(tmp_path):
    plan = tmp_path / "model.plan"
    write_engine_sidecar(plan, _spec(), ENGINE)
    data = json.loads(sidecar_path(plan).read_text())
    sidecar_path(plan).write_text(json.dumps({"artifact": data["artifact"]}))
    message = r"model\.plan\.json: engine: the record should be an object, not NoneType"
    _one_line_error(read_engine_sidecar, plan, match=message)
    sidecar_path(plan).write_text(json.dumps({"engine": data["engine"]}))
    _one_line_error(read_engine_sidecar, plan, match=r"model\.plan\.json: artifact: not a proreg-clip-artifact/1")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("classifier", "classes", "abc", r"classifier\.classes should be list, not str 'abc'"),
        ("classifier", "classes", ["a", 2], r"classifier\.classes\[1\] should be str, not int 2"),
        ("classifier", "logit_scale", "100", r"classifier\.logit_scale should be float, not str '100'"),
        (None, "precision", None, r"precision should be str, not NoneType None"),
        (None, "calibration", {}, r"calibration\.method is missing"),  # an empty object is not "no calibration"
    ],
)
def test_metadata_of_the_wrong_type_is_refused(onnx_path, section, key, value, message):
    data = _spec().to_dict()
    (data[section] if section else data)[key] = value
    _with_metadata(onnx_path, json.dumps(data))
    _one_line_error(read_onnx_spec, onnx_path, match=f"metadata: {message}")


def test_sidecar_engine_of_the_wrong_type_is_refused(tmp_path):
    plan = tmp_path / "model.plan"
    write_engine_sidecar(plan, _spec(), ENGINE)
    data = json.loads(sidecar_path(plan).read_text())
    data["engine"]["max_batch"] = "eight"
    sidecar_path(plan).write_text(json.dumps(data))
    _one_line_error(read_engine_sidecar, plan, match=r"engine: max_batch should be int, not str 'eight'")


@pytest.mark.parametrize(("key", "value"), [("precision", "fp64"), ("head", "mlp")])
def test_metadata_with_an_unknown_precision_or_head_is_refused(onnx_path, key, value):
    data = _spec().to_dict()
    (data["classifier"] if key == "head" else data)[key] = value
    _with_metadata(onnx_path, json.dumps(data))
    _one_line_error(read_onnx_spec, onnx_path, match="metadata: precision .* and head .* must be among")


def test_files_from_older_versions_say_what_to_do(onnx_path):
    flat = {**_spec().classifier.__dict__, "precision": "fp32"}  # the flat layout of proreg-clip before the contract
    _with_metadata(onnx_path, json.dumps(flat))
    _one_line_error(read_onnx_spec, onnx_path, match="older versions of proreg-clip cannot be read: export again")


# ------------------------------------------------------------------------------------ files from elsewhere


def external_data_model(folder, location: str, data_at=None):
    """A model (with our metadata) whose every tensor keeps its data at `location`, relative to the model's folder;
    the data file itself is put at `data_at` (default: where `location` points), so that a reader that followed
    the entry would find real data there."""
    import os
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    path = save_classifier_graph(folder / "model.onnx")
    write_onnx_spec(path, _spec())
    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True, location="w.data", size_threshold=0)
    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, str(path))
    target = data_at or os.path.normpath(os.path.join(folder, location))
    if str(target) != str(folder / "w.data"):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(folder / "w.data", target)
    return path


@pytest.mark.parametrize(
    "location",
    ["../outside/w.data", "sub/../../outside/w.data", "ABSOLUTE", "..\\outside\\w.data"],
    ids=["parent", "nested-parent", "absolute", "backslashes"],
)
def test_external_data_outside_the_models_folder_is_refused_before_it_is_read(tmp_path, location):
    location = str(tmp_path / "outside" / "w.data") if location == "ABSOLUTE" else location
    path = external_data_model(tmp_path / "model", location, data_at=tmp_path / "outside" / "w.data")
    message = _one_line_error(read_onnx_spec, path, match="outside the model's folder: refused")
    assert repr(location) in message and "tensor " in message


def test_external_data_through_a_symlink_out_is_refused(tmp_path):
    (tmp_path / "outside").mkdir()
    path = external_data_model(tmp_path / "model", "w.data")
    (tmp_path / "model" / "w.data").rename(tmp_path / "outside" / "w.data")
    (tmp_path / "model" / "w.data").symlink_to(tmp_path / "outside" / "w.data")
    _one_line_error(read_onnx_spec, path, match="keeps its data at 'w.data', outside the model's folder")
    (tmp_path / "model" / "w.data").unlink()
    (tmp_path / "model" / "link").symlink_to(tmp_path / "outside")  # a folder link out
    path = external_data_model(tmp_path / "model2", "link/w.data", data_at=tmp_path / "outside" / "w.data")
    (tmp_path / "model2" / "link").symlink_to(tmp_path / "outside")
    _one_line_error(read_onnx_spec, path, match="outside the model's folder")


def test_external_data_beside_the_model_is_read(tmp_path):
    path = external_data_model(tmp_path / "model", "w.data")
    assert read_onnx_spec(path) == _spec()
    inside = external_data_model(tmp_path / "model2", "weights/w.data")  # a folder inside is inside
    assert read_onnx_spec(inside) == _spec()


@pytest.mark.parametrize("name", ["..", "../escape", "/abs", "a/b", ".hidden", "a\\b", "", "x/../../y"])
def test_a_triton_model_name_cannot_leave_the_repository_folder(name):
    from common.artifact import check_triton_model_name
    from common.errors import OptionError

    with pytest.raises(OptionError, match="use letters, digits"):
        check_triton_model_name(name, "--triton-name")


@pytest.mark.parametrize("name", ["proreg_clip", "m-1.fp16", "Model9"])
def test_a_plain_triton_model_name_is_taken(name):
    from common.artifact import check_triton_model_name

    check_triton_model_name(name)
