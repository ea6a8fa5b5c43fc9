"""Which nodes of an exported graph belong to which part of the classifier, read from torch's name scopes.

The dynamo exporter records each node's module path ("visual", "visual.attnpool", ...) in its metadata. Precision
copies keep some parts in FP32: FP16 the head, INT8 by default the patch embedding, the final pooling stage and the
head. Export and calib both ask this module which nodes those are, so the two share one definition of each part.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from common.errors import UserError

if TYPE_CHECKING:  # onnx only for annotations: the CLI imports PARTS and must start fast
    import onnx

IMAGE_TOWER_SCOPE = "visual"  # ClipClassifier's image tower module; everything after it is the head
# The tower's last stage, where features are pooled into the embedding: ModifiedResNet's attention pool, a ViT's
# attention pool or final LayerNorm. Its outputs feed the cosine directly, so rounding there moves every logit.
POOL_SCOPES = frozenset({"visual.attnpool", "visual.attn_pool", "visual.ln_post"})
PARTS = ("patch_embed", "pool", "head")


def name_scopes(node: onnx.NodeProto) -> list[str]:
    props = {p.key: p.value for p in node.metadata_props}
    try:  # written by torch as a Python list literal, e.g. "['', 'visual', 'visual.attnpool']"
        scopes = ast.literal_eval(props.get("pkg.torch.onnx.name_scopes", "[]"))
    except (ValueError, SyntaxError):
        return []
    return scopes if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes) else []


def head_nodes(graph: onnx.GraphProto) -> list[str]:
    """Nodes outside the image tower that its output reaches: the L2 normalization, the logit scale and the
    classifier matmul."""
    tower = {n.name for n in graph.node if IMAGE_TOWER_SCOPE in name_scopes(n)}
    reached = {out for n in graph.node if n.name in tower for out in n.output}
    head = []
    for node in graph.node:  # exported nodes are in topological order
        if node.name not in tower and any(x in reached for x in node.input):
            head.append(node.name)
            reached.update(node.output)
    if not head or not tower:
        raise UserError("cannot tell the image tower from the head: the graph lacks torch's name-scope metadata")
    return head


def patch_embedding_nodes(graph: onnx.GraphProto) -> list[str]:
    """The node that first transforms the pixels with weights: the patch embedding (ViT) or stem conv (ResNet)."""
    node = next((n for n in graph.node if n.op_type in ("Conv", "MatMul", "Gemm")), None)
    return [node.name] if node is not None else []


def pool_nodes(graph: onnx.GraphProto) -> list[str]:
    """The tower's final pooling stage (POOL_SCOPES)."""
    return [n.name for n in graph.node if any(scope in POOL_SCOPES for scope in name_scopes(n))]


def nodes_of_parts(graph: onnx.GraphProto, parts: tuple[str, ...]) -> list[str]:
    """The names of the nodes that make up `parts` (each one of PARTS, checked by the caller's options), in the
    order of PARTS."""
    finders = {"patch_embed": patch_embedding_nodes, "pool": pool_nodes, "head": head_nodes}
    return [name for part in PARTS if part in parts for name in finders[part](graph)]
