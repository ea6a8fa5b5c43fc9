"""FP16 mixed precision in the ONNX graph, the way TensorRT 11 wants precision decided (strongly typed networks).

The image tower's convolutions and matmuls go to FP16; LayerNorm, softmax, the final L2 normalization and the
classifier matmul stay FP32. The head is kept FP32 because the logits are cosines scaled by ~100: an FP16 error of
1e-3 in a cosine moves a logit by 0.1, enough to flip close calls. Graph inputs and outputs stay float32, so
every runner feeds and reads the same types.

NVIDIA ModelOpt's AutoCast does the same job, but its `[onnx]` extra pins onnx ~1.21 and onnxruntime-gpu, which would
downgrade onnx here and install a second `onnxruntime` module over the CPU one. ONNX Runtime ships the converter
we need (`onnxruntime.transformers.float16`), with explicit block lists, so that is what we use.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

from common.artifact import ArtifactSpec, write_onnx_spec
from common.graph_scopes import nodes_of_parts
from export.onnx_export import save_onnx

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
KEEP_FP32_OPS = ["LayerNormalization", "Softmax", "ReduceL2", "ReduceMean", "Pow", "Sqrt", "Erf"]
KEEP_FP32_PARTS = ("head",)  # common.graph_scopes parts kept FP32 by node, beside the op types above


def write_fp16_copy(src: Path, dst: Path, spec: ArtifactSpec) -> Path:
    """Writes the mixed-precision copy of the FP32 model `src` to `dst`, described by `spec` as FP16; returns `dst`."""
    kept = convert_to_fp16(src, dst)
    write_onnx_spec(dst, spec.derive(precision="fp16", fp32_parts=KEEP_FP32_PARTS, fp32_nodes=tuple(kept)))
    return dst


def convert_to_fp16(src: Path, dst: Path) -> list[str]:
    """Writes the mixed-precision graph of `src` to `dst`; returns the names of the nodes kept in FP32 by name."""
    model = onnx.load(str(src), load_external_data=True)
    kept = nodes_of_parts(model.graph, KEEP_FP32_PARTS)
    mixed = convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=DEFAULT_OP_BLOCK_LIST + KEEP_FP32_OPS,
        node_block_list=kept,
    )
    _drop_duplicate_casts(mixed.graph)
    _sort_topologically(mixed.graph)
    # Shape annotations copied from the FP32 graph now disagree with the new types; the checker re-infers them.
    del mixed.graph.value_info[:]
    _fold_round_trip_casts(mixed)
    save_onnx(mixed, dst)
    return kept


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    graph = onnx.shape_inference.infer_shapes(model).graph
    values = list(graph.value_info) + list(graph.input) + list(graph.output)
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def _fold_round_trip_casts(model: onnx.ModelProto) -> None:
    """Removes FP32 -> FP16 -> FP32 cast pairs between FP32-kept nodes, where the FP16 copy feeds nothing else.

    The converter casts every kept node's output back to FP16 and the next kept node casts it up again, which
    rounds the head (cosines, scaled logits) to FP16 after all, and even the logits on their way out. A kept node
    whose output also feeds FP16 nodes (a LayerNorm inside the tower) keeps its pair: the tower is FP16 there anyway.
    """
    graph = model.graph
    types = _elem_types(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    dropped: set[str] = set()  # names of removed Cast nodes
    rename: dict[str, str] = {}  # tensor produced by a removed up-cast -> the FP32 tensor it round-tripped
    for down in graph.node:
        src, mid = down.input[0] if down.input else "", down.output[0]
        ups = consumers.get(mid, [])
        if _cast_to(down) != FLOAT16 or types.get(src) != FLOAT or mid in outputs or not ups:
            continue
        if any(_cast_to(up) != FLOAT for up in ups):
            continue
        dropped.update([down.name, *(up.name for up in ups)])
        rename.update({up.output[0]: src for up in ups})
    # A graph output keeps its name: the FP32 producer is renamed to it instead.
    for out, src in list(rename.items()):
        if out in outputs:
            del rename[out]
            rename[src] = out
    nodes = [n for n in graph.node if n.name not in dropped]
    for node in nodes:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    del graph.node[:]
    graph.node.extend(nodes)


def _drop_duplicate_casts(graph: onnx.GraphProto) -> None:
    """The converter inserts one Cast per consumer of a tensor that feeds several FP32-kept nodes, all with the
    same output name, which breaks single assignment; the copies are identical, so keep the first."""
    seen: set[str] = set()
    unique = []
    for node in graph.node:
        if node.op_type == "Cast" and node.output[0] in seen:
            continue
        seen.update(node.output)
        unique.append(node)
    del graph.node[:]
    graph.node.extend(unique)


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """The converter appends its input casts at the end of the node list; ONNX requires producers first."""
    produced_by = {out: i for i, node in enumerate(graph.node) for out in node.output}
    order: list[int] = []
    state: dict[int, int] = {}  # 1 = visiting, 2 = done

    def visit(i: int) -> None:
        stack = [(i, iter(graph.node[i].input))]
        state[i] = 1
        while stack:
            j, inputs = stack[-1]
            nxt = next((produced_by[x] for x in inputs if x in produced_by and state.get(produced_by[x]) != 2), None)
            if nxt is None:
                stack.pop()
                state[j] = 2
                order.append(j)
            elif state.get(nxt) != 1:
                state[nxt] = 1
                stack.append((nxt, iter(graph.node[nxt].input)))

    for i in range(len(graph.node)):
        if i not in state:
            visit(i)
    nodes = [graph.node[i] for i in order]
    del graph.node[:]
    graph.node.extend(nodes)
