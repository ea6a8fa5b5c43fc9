"""Which nodes of an exported graph are the patch embedding, the pool and the head, read from torch's name scopes."""

import itertools

import onnx
import pytest
from onnx import helper

from common.errors import UserError
from common.graph_scopes import (
    PARTS,
    head_nodes,
    name_scopes,
    nodes_of_parts,
    patch_embedding_nodes,
    pool_nodes,
)
from tests.graphs import HEAD_NODES, PATCH_EMBED_NODE, POOL_NODES, SCOPES_KEY, classifier_graph


def _node_with_scopes(value: str) -> onnx.NodeProto:
    node = helper.make_node("Relu", ["x"], ["y"], name="node_relu")
    node.metadata_props.add(key=SCOPES_KEY, value=value)
    return node


def test_head_nodes_are_the_normalization_scale_and_classifier_in_graph_order():
    graph = classifier_graph().graph
    head = head_nodes(graph)
    assert head == HEAD_NODES
    ops = {n.name: n.op_type for n in graph.node}
    assert [ops[name] for name in head] == ["ReduceL2", "Div", "Mul", "MatMul"]


def test_head_nodes_skip_ops_outside_the_tower_that_its_output_does_not_reach():
    # A node outside the tower that only reads the image (a Shape, as the exporter emits for the batch size) is
    # not part of the head, nor is anything computed from it alone.
    model = classifier_graph()
    shape = helper.make_node("Shape", ["image"], ["val_shape"], name="node_Shape_0")
    shape.metadata_props.add(key=SCOPES_KEY, value="['_empty_nn_module_stack_from_metadata_hook', 'sym_size_int']")
    nodes = [shape, *model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    assert head_nodes(model.graph) == HEAD_NODES


def test_pool_nodes_are_the_attention_pool_scope():
    graph = classifier_graph().graph
    assert pool_nodes(graph) == POOL_NODES
    ops = [n.op_type for n in graph.node if n.name in POOL_NODES]
    assert "Softmax" in ops and "MatMul" in ops


def test_pool_nodes_match_whole_scope_names_only():
    # 'visual.attnpool_extra' and 'visual' are not the pool; 'visual.ln_post' (a ViT's last stage) is.
    graph = classifier_graph().graph
    for node in graph.node:
        del node.metadata_props[:]
    graph.node[0].metadata_props.add(key=SCOPES_KEY, value="['', 'visual', 'visual.attnpool_extra']")
    graph.node[1].metadata_props.add(key=SCOPES_KEY, value="['', 'visual']")
    graph.node[2].metadata_props.add(key=SCOPES_KEY, value="['', 'visual', 'visual.ln_post', 'layer_norm']")
    assert pool_nodes(graph) == [graph.node[2].name]


def test_patch_embedding_is_the_first_weighted_node():
    graph = classifier_graph().graph
    assert patch_embedding_nodes(graph) == [PATCH_EMBED_NODE]
    # Without the Conv, the first MatMul takes its place (a ViT exported with a linear patch embedding).
    first_matmul = next(n.name for n in graph.node if n.op_type == "MatMul")
    convs = [n for n in graph.node if n.op_type == "Conv"]
    for conv in convs:
        conv.op_type = "Relu"
    assert patch_embedding_nodes(graph) == [first_matmul]
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            node.op_type = "Relu"
    assert patch_embedding_nodes(graph) == []


@pytest.mark.parametrize("parts", list(itertools.permutations(PARTS)) + [("head", "patch_embed"), ("pool",)])
def test_nodes_of_parts_follow_the_order_of_parts_whatever_the_order_asked(parts):
    graph = classifier_graph().graph
    found = {"patch_embed": [PATCH_EMBED_NODE], "pool": POOL_NODES, "head": HEAD_NODES}
    expected = [name for part in PARTS if part in parts for name in found[part]]
    assert nodes_of_parts(graph, parts) == expected


def test_nodes_of_no_parts_is_empty():
    assert nodes_of_parts(classifier_graph().graph, ()) == []


def test_graph_without_name_scopes_is_a_user_error():
    graph = classifier_graph(scopes=False).graph
    message = "cannot tell the image tower from the head: the graph lacks torch's name-scope metadata"
    with pytest.raises(UserError, match=message):
        head_nodes(graph)
    with pytest.raises(UserError, match="lacks torch's name-scope metadata"):
        nodes_of_parts(graph, ("patch_embed", "head"))
    assert pool_nodes(graph) == []  # no scope, no pool: nothing claimed wrongly
    assert patch_embedding_nodes(graph) == [PATCH_EMBED_NODE]  # found by op type, needs no scopes


def test_graph_with_a_tower_but_no_head_is_a_user_error():
    graph = classifier_graph().graph
    head = [n for n in graph.node if n.name in HEAD_NODES]
    for node in head:
        graph.node.remove(node)
    with pytest.raises(UserError, match="cannot tell the image tower from the head"):
        head_nodes(graph)


def test_name_scopes_reads_the_exporters_list_literal():
    assert name_scopes(_node_with_scopes("['', 'visual', 'visual.attnpool', 'matmul']")) == [
        "",
        "visual",
        "visual.attnpool",
        "matmul",
    ]
    assert name_scopes(helper.make_node("Relu", ["x"], ["y"])) == []  # no metadata at all


@pytest.mark.parametrize("value", ["['', 'visual'", "['', visual]", "", "__import__('os')"])
def test_name_scopes_tolerates_a_malformed_literal(value):
    assert name_scopes(_node_with_scopes(value)) == []
