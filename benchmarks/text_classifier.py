"""Peak memory of building the text classifier for ImageNet's 1,000 classes x 80 templates: bounded passes (the
project's way, common.classifier.TEXT_BATCH prompts a pass) against one pass over every prompt (how it was before).

    python benchmarks/text_classifier.py [--models builtin ViT-B-32] [--classes 1000] [--templates 80]
        [--one-pass-classes 4 8 16] [--json FILE]

Prompts are open_clip's ImageNet class names in its 80 ImageNet templates. Towers: the built-in model's text tower
(shipped weights) and ViT-B-32's (random weights: memory and time do not depend on them). Each configuration runs in
a fresh process: load the model, reset the process's peak resident memory (Linux /proc/self/clear_refs), build W,
and report the peak resident memory added on top of the loaded model, and the time. One pass over N prompts holds
[N, context, 4 x width] MLP activations beside attention maps; for ViT-B-32 at 80,000 prompts that is far more than
this machine has, so one pass runs on --one-pass-classes x templates prompts and its growth per prompt is reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common.builtin import BUILTIN

MODELS = (BUILTIN, "ViT-B-32")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(model: str, classes: int, templates: int, batch: int) -> dict:
    """Runs in its own process: builds W for classes x templates prompts in passes of `batch` prompts."""
    import open_clip
    import torch
    from open_clip import zero_shot_metadata as imagenet

    from common.classifier import text_classifier
    from common.models import LoadedClip, load_clip

    torch.set_num_threads(2)
    if model == BUILTIN:
        clip = load_clip(model)
    else:  # random weights: load_clip insists on pretrained ones, which cannot be downloaded here
        net = open_clip.create_model(model).eval()
        clip = LoadedClip(net, open_clip.get_tokenizer(model), model, None, {}, {})
    names = list(imagenet.IMAGENET_CLASSNAMES)[:classes]
    prompts = [t("{}") for t in imagenet.OPENAI_IMAGENET_TEMPLATES][:templates]
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from the loaded model
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    weights = text_classifier(clip, names, prompts, batch_size=batch)
    seconds = time.perf_counter() - start
    assert weights.shape[0] == classes
    return {"added_peak_mib": (_status_kib("VmHWM") - before) / 1024, "loaded_mib": before / 1024, "seconds": seconds}


def measure(model: str, classes: int, templates: int, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", model, str(classes), str(templates), str(batch)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {
        "model": model,
        "classes": classes,
        "templates": templates,
        "prompts_per_pass": batch,
        **json.loads(out.splitlines()[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--templates", type=int, default=80)
    parser.add_argument("--one-pass-classes", type=int, nargs="*", default=[4, 8, 16], help="classes of one-pass runs")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, classes, templates, batch = args.worker
        print(json.dumps(worker(model, int(classes), int(templates), int(batch))))
        return
    from common.classifier import TEXT_BATCH

    rows = []
    total = args.classes * args.templates
    print("| tower | prompts | prompts a pass | added peak MiB | MiB per prompt in a pass | seconds |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        runs = [(args.classes, TEXT_BATCH)]  # the project's way, the full set
        runs += [(classes, classes * args.templates) for classes in args.one_pass_classes]  # one pass, every prompt
        for classes, batch in runs:
            row = measure(model, classes, args.templates, batch)
            rows.append(row)
            n = classes * args.templates
            print(
                f"| {model} | {n} | {min(batch, n)} | {row['added_peak_mib']:.0f} | "
                f"{row['added_peak_mib'] / min(batch, n):.3f} | {row['seconds']:.1f} |",
                flush=True,
            )
    print(f"\nfull set: {args.classes} classes x {args.templates} templates = {total} prompts")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
