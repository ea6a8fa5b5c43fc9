"""Export of a tiny ViT tower: real LayerNormalization, attention kept in the graph, FP16 parity in ONNX Runtime."""

import onnx
import pytest
import torch

from common.metadata import ClassifierMeta
from common.models import ClipClassifier, build_visual
from export.fp16 import convert_to_fp16
from export.onnx_export import export_onnx, write_metadata
from export.verify import compare
from serve.runners import OnnxRuntimeRunner, TorchRunner

TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
PREPROCESS = {
    "size": 32,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    torch.manual_seed(0)
    visual = build_visual(TINY_VIT, PREPROCESS)
    weights = torch.nn.functional.normalize(torch.randn(5, 32), dim=-1)
    model = ClipClassifier(visual, weights, 100.0).eval()
    meta = ClassifierMeta("tiny-vit", None, TINY_VIT, PREPROCESS, list("abcde"), list("abcde"), ["{}"], 100.0)
    root = tmp_path_factory.mktemp("vit")
    fp32 = export_onnx(model, meta, root / "model.onnx", {"precision": "fp32"})
    convert_to_fp16(fp32, root / "model.fp16.onnx")
    write_metadata(root / "model.fp16.onnx", meta, {"precision": "fp16"})
    return TorchRunner(model, meta, "tiny-vit", "cpu"), fp32, root / "model.fp16.onnx"


def test_vit_graph_has_real_layernorm_and_no_fused_attention(vit):
    _, fp32, _ = vit
    ops = {n.op_type for n in onnx.load(str(fp32)).graph.node}
    assert "LayerNormalization" in ops and "Softmax" in ops
    assert "Attention" not in ops  # decomposed: what TensorRT 10 parses reliably


def test_vit_parity_fp32_and_fp16(vit):
    reference, fp32, fp16 = vit
    images = torch.randn(16, 3, 32, 32)
    p32 = compare(reference, OnnxRuntimeRunner(fp32), images)
    p16 = compare(reference, OnnxRuntimeRunner(fp16), images)
    assert p32.max_abs_logit_diff < 1e-3 and p32.top1_agreement == 1.0
    assert p16.passed, p16.describe()
