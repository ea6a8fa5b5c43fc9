"""Export of a tiny ViT tower: real LayerNormalization, attention kept in the graph, FP16 parity in ONNX Runtime."""

import onnx
import pytest
import torch

from common.artifact import ArtifactSpec, ClassifierMeta
from common.classifier import ClipClassifier
from common.models import build_visual
from export.fp16 import write_fp16_copy
from export.onnx_export import export_onnx
from serve.onnxruntime_runner import OnnxRuntimeRunner
from serve.parity import check_parity
from serve.torch_runner import TorchRunner

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
    spec = ArtifactSpec(classifier=meta)
    root = tmp_path_factory.mktemp("vit")
    fp32 = export_onnx(model, spec, root / "model.onnx")
    fp16 = write_fp16_copy(fp32, root / "model.fp16.onnx", spec)
    return TorchRunner(model, spec, "tiny-vit", "cpu"), fp32, fp16


def test_vit_graph_has_real_layernorm_and_no_fused_attention(vit):
    _, fp32, _ = vit
    ops = {n.op_type for n in onnx.load(str(fp32)).graph.node}
    assert "LayerNormalization" in ops and "Softmax" in ops
    assert "Attention" not in ops  # decomposed: what TensorRT 10 parses reliably


def test_vit_parity_fp32_and_fp16(vit):
    reference, fp32, fp16 = vit
    images = torch.randn(16, 3, 32, 32)
    p32 = check_parity(reference, OnnxRuntimeRunner(fp32), images)
    p16 = check_parity(reference, OnnxRuntimeRunner(fp16), images)
    assert p32.max_abs_logit_diff < 1e-3 and p32.top1_agreement == 1.0
    assert p16.passed, p16.describe()
