"""Tiny ONNX graphs built in code, shaped like our exported classifier, with torch's name-scope metadata.

`classifier_graph()` mimics what `export.onnx_export.export_onnx` writes for a CLIP classifier, at toy size:

    image [batch, 3, 4, 4] -> Conv (patch embedding) -> Relu -> tokens [batch, 4, 8] -> LayerNormalization
        -> attention pool (ReduceMean query, MatMul, Softmax, MatMul, projection MatMul) -> embedding [batch, 6]
        -> head: ReduceL2, Div (L2 normalization), Mul by the logit scale, MatMul with the class weights
        -> logits [batch, 5]

Every node carries "pkg.torch.onnx.name_scopes" as the dynamo exporter writes it: a Python list literal of the module
path, "['', 'visual', 'visual.attnpool', 'matmul']" for a node of the attention pool, "['', 'div']" for a head node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
OPSET, IR_VERSION = 18, 10  # what torch's dynamo exporter writes
CLASSES, EMBED, WIDTH = 5, 6, 8
LOGIT_SCALE = 100.0

# (op type, name, inputs, outputs, module path, attributes), in topological order as the exporter writes them.
_TOWER = [
    ("Conv", "node_conv1", ["image", "visual.conv1.weight"], ["conv1"], "visual.conv1", {"strides": [2, 2]}),
    ("Relu", "node_relu", ["conv1"], ["relu"], "visual.act1", {}),
    ("Reshape", "node_view", ["relu", "val_tokens_shape"], ["view"], "visual", {}),
    ("Transpose", "node_permute", ["view"], ["permute"], "visual", {"perm": [0, 2, 1]}),
    ("LayerNormalization", "node_layer_norm", ["permute", "visual.ln.weight", "visual.ln.bias"], ["layer_norm"],
     "visual.ln", {"axis": -1}),
]  # fmt: skip
_POOL = [
    ("ReduceMean", "node_mean", ["layer_norm", "val_axis_1"], ["mean"], {}),
    ("MatMul", "node_linear_q", ["mean", "visual.attnpool.q_proj.weight"], ["linear_q"], {}),
    ("Transpose", "node_transpose", ["layer_norm"], ["transpose"], {"perm": [0, 2, 1]}),
    ("MatMul", "node_matmul_scores", ["linear_q", "transpose"], ["matmul_scores"], {}),
    ("Softmax", "node_softmax", ["matmul_scores"], ["softmax"], {"axis": -1}),
    ("MatMul", "node_matmul_attn", ["softmax", "layer_norm"], ["matmul_attn"], {}),
    ("Squeeze", "node_squeeze", ["matmul_attn", "val_axis_1"], ["squeeze"], {}),
    ("MatMul", "node_linear_c", ["squeeze", "visual.attnpool.c_proj.weight"], ["linear_c"], {}),
]
_HEAD = [
    ("ReduceL2", "node_linalg_vector_norm", ["linear_c", "val_axis_last"], ["linalg_vector_norm"], {}),
    ("Div", "node_div", ["linear_c", "linalg_vector_norm"], ["div"], {}),
    ("Mul", "node_mul", ["logit_scale", "div"], ["mul"], {}),
    ("MatMul", "node_matmul", ["mul", "t"], ["logits"], {}),
]
TOWER_NODES = [spec[1] for spec in _TOWER + _POOL]
POOL_NODES = [spec[1] for spec in _POOL]
HEAD_NODES = [spec[1] for spec in _HEAD]
PATCH_EMBED_NODE = "node_conv1"


def _initializers(seed: int) -> list[onnx.TensorProto]:
    rng = np.random.default_rng(seed)
    classes = rng.standard_normal((EMBED, CLASSES)).astype(np.float32)
    arrays = {
        "visual.conv1.weight": rng.standard_normal((WIDTH, 3, 2, 2)).astype(np.float32) * 0.5,
        "visual.ln.weight": (1 + 0.1 * rng.standard_normal(WIDTH)).astype(np.float32),
        "visual.ln.bias": (0.1 * rng.standard_normal(WIDTH)).astype(np.float32),
        "visual.attnpool.q_proj.weight": rng.standard_normal((WIDTH, WIDTH)).astype(np.float32) * 0.5,
        "visual.attnpool.c_proj.weight": rng.standard_normal((WIDTH, EMBED)).astype(np.float32) * 0.5,
        "logit_scale": np.array(LOGIT_SCALE, dtype=np.float32),
        "t": classes / np.linalg.norm(classes, axis=0, keepdims=True),  # unit class embeddings, as columns
        "val_tokens_shape": np.array([0, WIDTH, -1], dtype=np.int64),
        "val_axis_1": np.array([1], dtype=np.int64),
        "val_axis_last": np.array([-1], dtype=np.int64),
    }
    return [numpy_helper.from_array(array, name) for name, array in arrays.items()]


def _node(op: str, name: str, inputs: list[str], outputs: list[str], scopes: list[str] | None, attrs: dict):
    node = helper.make_node(op, inputs, outputs, name=name, **attrs)
    if scopes is not None:
        node.metadata_props.add(key=SCOPES_KEY, value=repr(scopes))
    return node


def _module_path(module: str) -> list[str]:
    """ "visual.attnpool" -> ['', 'visual', 'visual.attnpool']: every enclosing module, as torch lists them."""
    parts = module.split(".")
    return ["", *(".".join(parts[: i + 1]) for i in range(len(parts)))]


def classifier_graph(*, scopes: bool = True, seed: int = 0) -> onnx.ModelProto:
    """The toy classifier described in the module docstring: input "image" float32 [batch, 3, 4, 4], output "logits"
    float32 [batch, 5], opset 18, weights drawn from numpy's generator with `seed`. With `scopes=False` no node has
    name-scope metadata, like a graph from another exporter."""
    nodes = []
    for op, name, inputs, outputs, module, attrs in _TOWER:
        nodes.append(_node(op, name, inputs, outputs, [*_module_path(module), outputs[0]] if scopes else None, attrs))
    for op, name, inputs, outputs, attrs in _POOL:
        path = [*_module_path("visual.attnpool"), outputs[0]]
        nodes.append(_node(op, name, inputs, outputs, path if scopes else None, attrs))
    for op, name, inputs, outputs, attrs in _HEAD:  # ops of ClipClassifier.forward itself: scope '' only
        nodes.append(_node(op, name, inputs, outputs, ["", outputs[0]] if scopes else None, attrs))
    graph = helper.make_graph(
        nodes,
        "toy_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=_initializers(seed),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


def save_classifier_graph(path: Path, *, scopes: bool = True, seed: int = 0) -> Path:
    """`classifier_graph()` saved to `path`; returns `path`."""
    onnx.save(classifier_graph(scopes=scopes, seed=seed), str(path))
    return Path(path)
