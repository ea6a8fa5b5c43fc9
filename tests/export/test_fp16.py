"""FP16 rewriting of a small hand-built classifier graph: the head stays FP32, the tower runs FP16, ORT agrees."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from common.artifact import ArtifactSpec, ClassifierMeta, read_onnx_spec, write_onnx_spec
from export.fp16 import convert_to_fp16, write_fp16_copy
from tests.graphs import CLASSES, HEAD_NODES, save_classifier_graph

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
# Logits are cosines times the logit scale (100). FP16 rounds with a unit roundoff of 2**-11 ~ 4.9e-4; the tower
# chains about ten FP16 ops (conv, three matmuls, reshapes) with sums over at most 12 terms, which leaves the unit
# embedding off by at most ~2e-3, so a cosine by ~2e-3 and a logit by 100 * 2e-3 = 0.2. A broken rewrite (a wrong
# input rewired, a dropped node) moves logits by tens, far beyond this.
LOGIT_ATOL = 0.2


@pytest.fixture
def fp32_path(tmp_path):
    return save_classifier_graph(tmp_path / "model.onnx")


@pytest.fixture
def fp16_model(fp32_path, tmp_path):
    kept = convert_to_fp16(fp32_path, tmp_path / "model.fp16.onnx")
    return onnx.load(str(tmp_path / "model.fp16.onnx")), kept


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    graph = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next(a.i for a in node.attribute if a.name == "to") if node.op_type == "Cast" else None


def _run(path, images: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # as serve does for FP16
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": images})[0]


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def test_convert_returns_the_head_nodes_it_kept(fp16_model):
    model, kept = fp16_model
    assert kept == HEAD_NODES
    assert set(kept) <= {n.name for n in model.graph.node}  # the names still name nodes of the new graph


def test_head_stays_fp32(fp16_model):
    model, _ = fp16_model
    types = _elem_types(model)
    for name in HEAD_NODES:  # every float tensor in or out of a head node is FP32 (the axes are int64)
        node = _node(model, name)
        assert all(types[x] in (FLOAT, TensorProto.INT64) for x in [*node.input, *node.output]), name
    matmul = _node(model, "node_matmul")
    assert [types[x] for x in matmul.input] == [FLOAT, FLOAT]
    assert list(matmul.output) == ["logits"]  # the logits leave the classifier matmul directly, never via FP16
    assert types[_node(model, "node_linalg_vector_norm").output[0]] == FLOAT
    assert types[_node(model, "node_mul").input[0]] == FLOAT  # the logit scale initializer is not rounded


def test_layernorm_and_softmax_stay_fp32_by_op_type(fp16_model):
    model, _ = fp16_model
    types = _elem_types(model)
    for op in ("LayerNormalization", "Softmax", "ReduceMean"):
        node = next(n for n in model.graph.node if n.op_type == op)
        assert types[node.input[0]] == FLOAT and types[node.output[0]] == FLOAT, op


def test_tower_convolution_and_matmuls_run_in_fp16(fp16_model):
    model, _ = fp16_model
    types = _elem_types(model)
    initializers = {t.name: t.data_type for t in model.graph.initializer}
    for name in ("visual.conv1.weight", "visual.attnpool.q_proj.weight", "visual.attnpool.c_proj.weight"):
        assert initializers[name] == FLOAT16, name
    tower = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul") and n.name not in HEAD_NODES]
    assert len(tower) == 5
    for node in tower:
        assert all(types[x] == FLOAT16 for x in [*node.input, *node.output]), node.name
    assert initializers["t"] == FLOAT and initializers["logit_scale"] == FLOAT  # the head's weights are not


def test_graph_input_and_output_stay_float32_with_a_dynamic_batch(fp16_model):
    model, _ = fp16_model
    (image,), (logits,) = model.graph.input, model.graph.output
    assert (image.name, image.type.tensor_type.elem_type) == ("image", FLOAT)
    assert (logits.name, logits.type.tensor_type.elem_type) == ("logits", FLOAT)
    assert image.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_no_fp32_fp16_fp32_round_trip_remains(fp16_model):
    model, _ = fp16_model
    types = _elem_types(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in model.graph.node:
        if _cast_to(node) == FLOAT16 and types[node.input[0]] == FLOAT:
            ups = consumers.get(node.output[0], [])
            assert not ups or any(_cast_to(up) != FLOAT for up in ups), f"{node.name}: FP32 -> FP16 -> FP32"
    # In this graph the head is a chain of FP32 nodes: the only Cast feeding it lifts the tower's FP16 embedding.
    producer = {out: n for n in model.graph.node for out in n.output}
    feeding = [producer[x] for name in HEAD_NODES for x in _node(model, name).input if x in producer]
    casts = [n for n in feeding if n.op_type == "Cast"]
    assert {(_cast_to(n), producer[n.input[0]].name) for n in casts} == {(FLOAT, "node_linear_c")}


def test_single_assignment_and_the_full_checker(fp16_model, tmp_path):
    model, _ = fp16_model
    outputs = [out for n in model.graph.node for out in n.output]
    assert len(outputs) == len(set(outputs))
    sources = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    assert not sources & set(outputs)
    assert len({n.name for n in model.graph.node}) == len(model.graph.node)
    onnx.checker.check_model(model, full_check=True)
    onnx.checker.check_model(str(tmp_path / "model.fp16.onnx"), full_check=True)


def test_fp16_graph_matches_fp32_in_onnxruntime(fp32_path, tmp_path):
    fp16_path = tmp_path / "model.fp16.onnx"
    convert_to_fp16(fp32_path, fp16_path)
    images = np.random.default_rng(1).standard_normal((16, 3, 4, 4)).astype(np.float32)
    ref, out = _run(fp32_path, images), _run(fp16_path, images)
    assert out.dtype == np.float32 and out.shape == ref.shape == (16, CLASSES)
    assert np.abs(out - ref).max() < LOGIT_ATOL
    assert (out.argmax(axis=1) == ref.argmax(axis=1)).all()
    assert np.abs(ref).max() > 10 * LOGIT_ATOL  # the tolerance is small next to the logits themselves
    assert _run(fp16_path, images[:1]).shape == (1, CLASSES)  # the batch stays dynamic


def test_write_fp16_copy_records_the_spec(fp32_path, tmp_path):
    meta = ClassifierMeta("toy", None, {"embed_dim": 6}, {"size": 4}, list("abcde"), list("abcde"), ["{}"], 100.0)
    spec = ArtifactSpec(classifier=meta, source_run="runs/toy", exporter="hand-built")
    write_onnx_spec(fp32_path, spec)
    before = fp32_path.read_bytes()
    dst = tmp_path / "model.fp16.onnx"
    assert write_fp16_copy(fp32_path, dst, spec) == dst
    copy = read_onnx_spec(dst)
    assert copy.precision == "fp16" and copy.fp32_parts == ("head",) and copy.fp32_nodes == tuple(HEAD_NODES)
    assert copy == spec.derive(precision="fp16", fp32_parts=("head",), fp32_nodes=tuple(HEAD_NODES))
    assert read_onnx_spec(fp32_path) == spec and fp32_path.read_bytes() == before  # the source is left alone
    assert FLOAT16 in {t.data_type for t in onnx.load(str(dst)).graph.initializer}
