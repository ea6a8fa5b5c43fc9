"""The Triton model repository: Triton's layout, every config.pbtxt parsed back with Triton's own model-config
protobuf (from tritonclient, so a field name Triton does not know fails), labels on the logits output, the spec
read back; atomic and idempotent writes; a folder that holds another model refused with nothing changed."""

import json
import shutil
from dataclasses import replace

import onnx
import pytest
from typer.testing import CliRunner

from common.artifact import (
    EngineInfo,
    read_onnx_spec,
    spec_from_triton_parameters,
    write_engine_sidecar,
    write_onnx_spec,
)
from common.errors import OptionError
from export.triton_repo import (
    TritonRepoError,
    TritonRepoOptions,
    check_triton_repo,
    read_model_spec,
    server_command,
    write_triton_repo,
)

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse_config(folder):
    """config.pbtxt through Triton's ModelConfig protobuf: an unknown field or a malformed value raises."""
    return text_format.Parse((folder / "config.pbtxt").read_text(), pb.ModelConfig())


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def snapshot(root):
    """Every path under `root` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


MODEL_FILES = ["proreg_clip", *(f"proreg_clip/{f}" for f in ("1", "1/model.onnx", "config.pbtxt", "labels.txt"))]


@pytest.fixture
def onnx_model(builtin_onnx, tmp_path):
    """A copy of the built-in model's ONNX export whose spec names a source weights file (as a run's export does)."""
    path, spec = builtin_onnx
    copy = tmp_path / "export" / "model.onnx"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    write_onnx_spec(copy, spec.derive(source_sha256="ab" * 32, source_run="/runs/a"))
    return copy


def test_layout_and_config(onnx_model, tmp_path):
    repo = tmp_path / "repo"
    written = write_triton_repo(repo, TritonRepoOptions(max_batch_size=32), {"fp32": onnx_model}, {})
    assert written == {"proreg_clip": repo / "proreg_clip"}
    assert tree(repo) == MODEL_FILES
    assert (repo / "proreg_clip/1/model.onnx").read_bytes() == onnx_model.read_bytes()
    spec = read_onnx_spec(onnx_model)
    assert (repo / "proreg_clip/labels.txt").read_text().splitlines() == spec.classes

    config = parse_config(repo / "proreg_clip")
    assert (config.name, config.platform, config.max_batch_size) == ("proreg_clip", "onnxruntime_onnx", 32)
    assert config.default_model_filename == "model.onnx"
    ((image,), (logits,)) = config.input, config.output
    assert (image.name, image.data_type, list(image.dims)) == ("image", pb.TYPE_FP32, [3, 64, 64])  # no batch dim
    assert (logits.name, logits.data_type, list(logits.dims)) == ("logits", pb.TYPE_FP32, [6])
    assert logits.label_filename == "labels.txt"
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16, 32]
    assert [(g.kind, g.count) for g in config.instance_group] == [(pb.ModelInstanceGroup.KIND_CPU, 1)]
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert spec_from_triton_parameters(params, "config") == spec == read_model_spec(repo / "proreg_clip")
    preprocess = {k.removeprefix("preprocess."): json.loads(v) for k, v in params.items() if k != "proreg_clip"}
    assert preprocess == spec.classifier.preprocess  # size, mean, std, interpolation, ...


def test_every_precision_and_engine_gets_its_model(onnx_model, tmp_path):
    fp16 = onnx_model.with_name("model.fp16.onnx")
    shutil.copy(onnx_model, fp16)
    write_onnx_spec(fp16, read_onnx_spec(onnx_model).derive(precision="fp16"))
    plan = onnx_model.with_name("model.fp16.plan")  # no TensorRT here: engine bytes and a valid sidecar
    plan.write_bytes(b"ftrt engine")
    engine = EngineInfo("10.9.0", "NVIDIA L4", "8.9", min_batch=1, opt_batch=32, max_batch=128)
    write_engine_sidecar(plan, read_onnx_spec(fp16), engine)
    repo = tmp_path / "repo"
    options = TritonRepoOptions(name="clf", gpu=True)
    written = write_triton_repo(repo, options, {"fp32": onnx_model, "fp16": fp16}, {"fp16": plan})
    assert list(written) == ["clf", "clf_fp16", "clf_fp16_trt"]
    gpu = pb.ModelInstanceGroup.KIND_GPU
    for name, platform, max_batch, filename in [
        ("clf", "onnxruntime_onnx", 64, "model.onnx"),
        ("clf_fp16", "onnxruntime_onnx", 64, "model.onnx"),
        ("clf_fp16_trt", "tensorrt_plan", 128, "model.plan"),  # the engine's profile bounds its batch
    ]:
        config = parse_config(repo / name)
        assert (config.name, config.platform, config.max_batch_size) == (name, platform, max_batch)
        assert (repo / name / "1" / filename).is_file() and config.default_model_filename == filename
        assert [g.kind for g in config.instance_group] == [gpu]
        assert read_model_spec(repo / name).precision == ("fp32" if name == "clf" else "fp16")
    assert (repo / "clf_fp16_trt/1/model.plan").read_bytes() == b"ftrt engine"
    # Triton's TensorRT backend loads a version-compatible engine only when told to trust it.
    assert server_command(repo, {"fp16": plan}) == f"tritonserver --model-repository {repo}"
    write_engine_sidecar(plan, read_onnx_spec(fp16), replace(engine, version_compatible=True))
    assert server_command(repo, {"fp16": plan}) == (
        f"tritonserver --model-repository {repo} --backend-config=tensorrt,version-compatible=true"
    )


def test_external_weights_travel_with_the_model(onnx_model, tmp_path):
    import onnxruntime as ort

    external = tmp_path / "ext" / "model.onnx"
    external.parent.mkdir()
    onnx.save(onnx.load(str(onnx_model)), str(external), save_as_external_data=True, location="model.onnx.data")
    repo = tmp_path / "repo"
    write_triton_repo(repo, TritonRepoOptions(), {"fp32": external}, {})
    assert sorted(p.name for p in (repo / "proreg_clip/1").iterdir()) == ["model.onnx", "model.onnx.data"]
    ort.InferenceSession(str(repo / "proreg_clip/1/model.onnx"), providers=["CPUExecutionProvider"])


def test_exporting_the_same_model_again_replaces_it(onnx_model, tmp_path):
    repo, options = tmp_path / "repo", TritonRepoOptions()
    write_triton_repo(repo, options, {"fp32": onnx_model}, {})
    first = (repo / "proreg_clip/config.pbtxt").read_text()
    check_triton_repo(repo, options, read_onnx_spec(onnx_model), ["fp32"])
    write_triton_repo(repo, options, {"fp32": onnx_model}, {})
    assert (repo / "proreg_clip/config.pbtxt").read_text() == first
    assert tree(repo) == MODEL_FILES


def test_a_folder_holding_another_model_is_refused(onnx_model, tmp_path):
    repo, options = tmp_path / "repo", TritonRepoOptions()
    write_triton_repo(repo, options, {"fp32": onnx_model}, {})
    before = snapshot(repo)
    spec = read_onnx_spec(onnx_model)
    for other in (
        spec.derive(source_sha256="cd" * 32, source_run="/runs/b"),  # another run's weights
        spec.derive(classifier=replace(spec.classifier, classes=spec.classes[::-1])),
    ):
        with pytest.raises(TritonRepoError, match=f"{repo / 'proreg_clip'} already holds another model"):
            check_triton_repo(repo, options, other, ["fp32"])
    write_onnx_spec(onnx_model, spec.derive(source_sha256="cd" * 32))
    with pytest.raises(TritonRepoError, match="already holds another model"):
        write_triton_repo(repo, options, {"fp32": onnx_model}, {})
    assert snapshot(repo) == before  # no temporary folder left either

    (repo / "proreg_clip_int8").mkdir()
    (repo / "proreg_clip_int8" / "notes.txt").write_text("mine\n")
    with pytest.raises(TritonRepoError, match="proreg_clip_int8 already holds something else"):
        check_triton_repo(repo, options, spec, ["fp32", "int8"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(name="../up"), "--triton-name '../up': use letters, digits"),
        (dict(name=".hidden"), "--triton-name '.hidden'"),
        (dict(max_batch_size=0), "--triton-max-batch must be a finite number at least 1"),
    ],
)
def test_options_are_checked(options, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(".", r"\.")):
        TritonRepoOptions(**options)


def test_engines_must_take_a_batch_of_one(onnx_model, tmp_path):
    with pytest.raises(OptionError, match="--min-batch 2: a Triton model takes batches from 1 up"):
        check_triton_repo(tmp_path / "repo", TritonRepoOptions(), read_onnx_spec(onnx_model), ["fp32"], 2)
    assert not (tmp_path / "repo").exists()


@pytest.mark.slow
def test_cli_export_writes_the_repository(tmp_path):
    """`export --triton-repo` on a real (2-step) run, twice: the second export replaces the first's models."""
    from cli import app
    from train.config import TrainConfig
    from train.losses import LossConfig
    from train.trainer import train

    run = tmp_path / "run"
    train(TrainConfig(max_steps=2, loss=LossConfig(kind="ce")), run)
    args = ["export", "--checkpoint", str(run), "--fp16", "--triton-repo", str(tmp_path / "repo")]
    for _ in range(2):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["proreg_clip", "proreg_clip_fp16"]
    for name, precision in (("proreg_clip", "fp32"), ("proreg_clip_fp16", "fp16")):
        assert parse_config(tmp_path / "repo" / name).name == name
        exported = run / ("model.onnx" if precision == "fp32" else "model.fp16.onnx")
        assert read_model_spec(tmp_path / "repo" / name) == read_onnx_spec(exported)
