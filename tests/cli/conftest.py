"""The bad-input tables' fixtures: one session-wide `world` of good and damaged inputs, and the harness that runs a
command on them and checks that it is refused cleanly: exit status 2, one line on stderr naming what is wrong, no
traceback, and not one file created or changed in the world or the working directory.

Case tables write paths into the world as `f"{W}/name"`; the harness puts the world's real path in their place
(in the arguments and in the expected message). A case that may change what it names (a run to resume) writes
`f"{COPY}/name"` instead: the harness copies the world's `name` into the case's working directory first, so that a
command that is not refused changes only its own copy, never what later cases see.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

W = "<world>"  # stands for the world folder in case tables
COPY = "<copy>"  # stands for the case's working directory, holding a fresh copy of the world's entry named after it
PROC_DIR = "/proc/proreg-test"  # a folder nobody can create, root included
CLASSES = ("circle", "square", "triangle", "star", "cross", "hexagon")  # the built-in benchmark's classes, in order
PER_CLASS = 10


@dataclass(frozen=True)
class Usage:
    """Expected outcome of a value typer cannot parse: its own usage message (several lines) naming `option`."""

    option: str


def usage(option: str) -> Usage:
    return Usage(option)


def table(cases: list) -> list:
    """pytest parameters from a case table of (id, args, message) tuples (or ready pytest.param objects)."""
    return [case if hasattr(case, "marks") else pytest.param(*case, id=case[0]) for case in cases]


# --------------------------------------------------------------------------------------------------------- world


def _image_folder(root: Path, benchmark_root: Path, per_class: int = PER_CLASS) -> Path:
    """`per_class` PNGs of each class, copied from the built-in train split (as tests/conftest.py's tiny_folder)."""
    counts: dict[str, int] = {}
    with open(benchmark_root / "train.csv") as f:
        for row in csv.DictReader(f):
            label = row["label"]
            if counts.get(label, 0) >= per_class:
                continue
            counts[label] = counts.get(label, 0) + 1
            (root / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(benchmark_root / row["path"], root / label / Path(row["path"]).name)
    return root


def _manifest(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _copy_run(src: Path, dst: Path, status: str | None = None) -> Path:
    from common.run import open_run, write_run_record

    shutil.copytree(src, dst)
    if status:
        write_run_record(dst, replace(open_run(dst).record, status=status))
    return dst


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_run_json(run_dir: Path, edit) -> None:
    data = json.loads((run_dir / "run.json").read_text())
    edit(data)
    (run_dir / "run.json").write_text(json.dumps(data, indent=2))


def _onnx_with_metadata(src: Path, dst: Path, value: str | None) -> None:
    """A copy of `src` whose proreg_clip metadata is `value` (None: no metadata at all)."""
    import onnx

    from common.artifact import META_KEY

    proto = onnx.load(str(src))
    del proto.metadata_props[:]
    if value is not None:
        proto.metadata_props.add(key=META_KEY, value=value)
    onnx.save(proto, str(dst))


def build_world(root: Path, benchmark_root: Path) -> Path:
    """Everything the case tables point at, made with the project's own code. Layout (under `root`):

    run/                   a finished 2-step ce run on the built-in data, exported (run/model.onnx)
    run-running/           the same, looking interrupted (status running): resumable
    run-state-truncated/   run-running with state.pt cut in half
    run-last-truncated/    run-running with last.safetensors cut in half
    run-json-corrupt/      run-running whose run.json is cut in half
    run-json-format/       run-running whose run.json says format proreg-clip-run/1
    run-json-nokey/        run-running whose run.json lacks train_config
    run-best-5rows/        run whose best.safetensors has 5 class vectors for its 6 classes
    run-best-truncated/    run with best.safetensors cut in half
    run-no-best/           run without best.safetensors
    images/                6 classes x 10 PNGs;  images-pentagon/: hexagon renamed pentagon
    images-emptyclass/     images/ plus an empty class folder zebra/
    images-garbage/        6 classes x 4 files named .png that are not images (truncated PNGs, random bytes)
    empty/                 an empty folder
    images.csv             a fine manifest of images/ (path,label,group)
    nolabel.csv            a manifest without the label column;  repeated.csv: a row listed twice
    unknown-label.csv      a manifest with a pentagon row (unknown with --classnames classnames.txt)
    classnames.txt         fine;  classnames-dup.txt: circle twice;  classnames-missing.txt: no hexagon
    templates.txt          fine;  templates-bad.txt: "{x} photo";  templates-empty.txt: comments only
    latin1.csv, classnames-latin1.txt, templates-latin1.txt: text in Latin-1, not UTF-8
    run-state-foreign/     run-running whose state.pt is another program's (a plain dict of other keys)
    calib-shape.npy        float32 [20, 3, 32, 32];  calib-garbage.npy: random bytes;  calib-int.npy: int64 images;
    calib-few.npy          float32 [4, 3, 64, 64]
    corrupt.onnx           random bytes;  nometa.onnx: model.onnx without metadata;  badjson.onnx: metadata not
                           JSON;  flat.onnx: metadata of the old flat format;  pixels.onnx: metadata naming input
                           "pixels";  stripped.onnx: weights in w.data, which is deleted;  reordered.onnx: classes
                           in reverse order in its metadata (a reference with other classes)
    exported-elsewhere/    the run's model.onnx in a folder that is not a run directory
    nosidecar.plan         engine bytes without sidecar;  badsidecar.plan: sidecar not JSON;  valid.plan: a valid
                           sidecar (fails: TensorRT is not installed)
    model-noconfig/        a model folder without open_clip_config.json
    notes.json             the user's own file;  docs/notes.md: the user's own Markdown file (no notes.json there)
    chart/report.png       a chart without its report
    afolder                a plain file named like a folder;  results.json/: a folder named like a report
    """
    rng = np.random.default_rng(0)
    run = _runs(root)
    _data(root, benchmark_root, rng)
    _onnx_files_and_engines(root, run / "model.onnx", rng)
    _users_files(root, rng)
    return root


def _runs(root: Path) -> Path:
    """run/ and its damaged copies (see build_world)."""
    from safetensors.torch import load_file, save_file

    from train.config import TrainConfig
    from train.losses import LossConfig
    from train.trainer import train
    from workflows.export import export_run

    run = root / "run"
    train(TrainConfig(max_steps=2, loss=LossConfig(kind="ce")), run)
    export_run(run, log=lambda m: None)
    running = _copy_run(run, root / "run-running", status="running")
    _truncate(_copy_run(running, root / "run-state-truncated") / "state.pt")
    _truncate(_copy_run(running, root / "run-last-truncated") / "last.safetensors")
    corrupt = _copy_run(running, root / "run-json-corrupt") / "run.json"
    corrupt.write_text(corrupt.read_text()[:200])
    _edit_run_json(_copy_run(running, root / "run-json-format"), lambda d: d.update(format="proreg-clip-run/1"))
    _edit_run_json(_copy_run(running, root / "run-json-nokey"), lambda d: d.pop("train_config"))
    five = _copy_run(run, root / "run-best-5rows") / "best.safetensors"
    state = load_file(str(five))
    state["head.weight"] = state["head.weight"][:5].contiguous()
    save_file(state, str(five), metadata={"step": "2"})
    _truncate(_copy_run(run, root / "run-best-truncated") / "best.safetensors")
    (_copy_run(run, root / "run-no-best") / "best.safetensors").unlink()
    import torch

    torch.save({"epoch": 3, "model": {}}, _copy_run(running, root / "run-state-foreign") / "state.pt")
    return run


def _data(root: Path, benchmark_root: Path, rng: np.random.Generator) -> None:
    """Image folders, manifests, class-names and template files, calibration arrays (see build_world)."""
    images = _image_folder(root / "images", benchmark_root)
    shutil.copytree(images, root / "images-pentagon")
    (root / "images-pentagon" / "hexagon").rename(root / "images-pentagon" / "pentagon")
    shutil.copytree(images, root / "images-emptyclass")
    (root / "images-emptyclass" / "zebra").mkdir()
    for label in CLASSES:
        (root / "images-garbage" / label).mkdir(parents=True)
        real = next((images / label).iterdir()).read_bytes()
        for i in range(4):
            junk = real[: len(real) // 3] if i % 2 else rng.bytes(500)  # truncated PNGs and random bytes
            (root / "images-garbage" / label / f"{i:02d}.png").write_bytes(junk)
    (root / "empty").mkdir()

    # Manifests
    rows = [[str(p.relative_to(root)), p.parent.name, "g"] for p in sorted(images.rglob("*.png"))]
    _manifest(root / "images.csv", ["path", "label", "group"], rows)
    _manifest(root / "nolabel.csv", ["path", "group"], [[r[0], r[2]] for r in rows])
    _manifest(root / "repeated.csv", ["path", "label", "group"], [*rows, rows[3]])
    _manifest(root / "unknown-label.csv", ["path", "label"], [*[r[:2] for r in rows[:-1]], [rows[-1][0], "pentagon"]])

    # Class names and templates
    (root / "classnames.txt").write_text("".join(f"{c},a {c}\n" for c in CLASSES))
    (root / "classnames-dup.txt").write_text("circle\nsquare\ncircle\ntriangle\nstar\ncross\nhexagon\n")
    (root / "classnames-missing.txt").write_text("".join(f"{c}\n" for c in CLASSES if c != "hexagon"))
    (root / "templates.txt").write_text("a photo of a {}\na drawing of a {}\n")
    (root / "templates-bad.txt").write_text("a photo of a {}\n{x} photo\n")
    (root / "templates-empty.txt").write_text("# no templates here\n\n")
    # Text in another encoding than UTF-8 (Latin-1, as old Windows tools save it)
    (root / "latin1.csv").write_bytes("path,label\nimages/circle/caf\xe9.png,circle\n".encode("latin-1"))
    (root / "classnames-latin1.txt").write_bytes("circle,cercle\nsquare,carr\xe9\n".encode("latin-1"))
    (root / "templates-latin1.txt").write_bytes("une photo d'un {} \xe0 voir\n".encode("latin-1"))

    # Calibration arrays
    np.save(root / "calib-shape.npy", rng.standard_normal((20, 3, 32, 32)).astype(np.float32))
    (root / "calib-garbage.npy").write_bytes(rng.bytes(4096))
    np.save(root / "calib-int.npy", rng.integers(0, 255, (20, 3, 64, 64)))
    np.save(root / "calib-few.npy", rng.standard_normal((4, 3, 64, 64)).astype(np.float32))

    return images


def _onnx_files_and_engines(root: Path, model: Path, rng: np.random.Generator) -> None:
    """Damaged and foreign ONNX files, and engines with missing, broken and valid sidecars (see build_world)."""
    import onnx

    from common.artifact import EngineInfo, read_onnx_spec, write_engine_sidecar, write_onnx_spec

    spec = read_onnx_spec(model)
    (root / "corrupt.onnx").write_bytes(b"\xff\xfe not an ONNX model \x00\x01" + rng.bytes(64))
    _onnx_with_metadata(model, root / "nometa.onnx", None)
    _onnx_with_metadata(model, root / "badjson.onnx", "{'classes': ['circle'")
    flat = {"classes": list(spec.classes), "preprocess": spec.classifier.preprocess, "precision": "fp32"}
    _onnx_with_metadata(model, root / "flat.onnx", json.dumps(flat))
    shutil.copy(model, root / "pixels.onnx")
    write_onnx_spec(root / "pixels.onnx", spec.derive(input_name="pixels"))
    shutil.copy(model, root / "reordered.onnx")
    reversed_classes = replace(spec.classifier, classes=spec.classes[::-1], prompts=spec.classifier.prompts[::-1])
    write_onnx_spec(root / "reordered.onnx", spec.derive(classifier=reversed_classes))
    onnx.save(onnx.load(str(model)), str(root / "stripped.onnx"), save_as_external_data=True, location="w.data")
    (root / "w.data").unlink()
    (root / "exported-elsewhere").mkdir()
    shutil.copy(model, root / "exported-elsewhere" / "model.onnx")

    # Engines
    engine = EngineInfo("10.9.0", "NVIDIA L4", "8.9", min_batch=1, opt_batch=32, max_batch=256)
    for name in ("nosidecar", "badsidecar", "valid"):
        (root / f"{name}.plan").write_bytes(b"ftrt" + rng.bytes(1024))
    (root / "badsidecar.plan.json").write_text('{"artifact": {"format": "proreg-clip-artifact/1", ')
    write_engine_sidecar(root / "valid.plan", spec, engine)


def _users_files(root: Path, rng: np.random.Generator) -> None:
    """A model folder without config, the user's own files, odd paths (see build_world)."""
    from common.builtin import BUILTIN_DIR

    (root / "model-noconfig").mkdir()
    shutil.copy(BUILTIN_DIR / "open_clip_model.safetensors", root / "model-noconfig")
    (root / "notes.json").write_text('{"my": "notes"}\n')
    (root / "docs").mkdir()
    (root / "docs" / "notes.md").write_text("# My notes\n\nNot a report.\n")
    (root / "chart").mkdir()
    (root / "chart" / "report.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(100))
    (root / "afolder").write_text("a file, not a folder\n")
    (root / "results.json").mkdir()


@pytest.fixture(scope="session")
def world(tmp_path_factory, benchmark_root) -> Path:
    return build_world(tmp_path_factory.mktemp("world"), benchmark_root)


# ------------------------------------------------------------------------------------------------------- harness

Snapshot = dict[str, tuple[str, int, int]]  # relative path -> (kind, size, mtime_ns)


def snapshot(root: Path) -> Snapshot:
    """Every file, folder and link under `root` (itself included), without following links; __pycache__ ignored."""
    entries: Snapshot = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in [".", *dirs, *files]:
            path = Path(folder) / name
            st = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            entries[os.path.normpath(path.relative_to(root))] = (
                kind,
                st.st_size if kind != "dir" else 0,
                st.st_mtime_ns,
            )
    return entries


def _differences(before: Snapshot, after: Snapshot, where: str) -> list[str]:
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    out = [f"created in {where}: {p}" for p in created]
    out += [f"removed from {where}: {p}" for p in removed]
    out += [f"changed in {where}: {p} {before[p]} -> {after[p]}" for p in changed]
    return out


def _remove_created(root: Path, before: Snapshot, after: Snapshot) -> None:
    """Undoes what a failing case created, so that one bug does not change what later cases see."""
    for rel in sorted(set(after) - set(before), key=len, reverse=True):
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def process_logging() -> Iterator[None]:
    """Logging as in a fresh `python cli.py` process, where the root logger has no handler until the CLI sets its
    own up (and a warning logged before that reaches stderr through logging's last-resort handler): pytest's capture
    handlers are taken off the root logger meanwhile, and put back afterwards in place of whatever the command
    installed (a handler bound to the runner's stderr, which is closed once the command is done)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _prepare_cwd(args: list[str], cwd: Path, world: Path, files: dict[str, str] | None) -> None:
    """Copies into `cwd` the world entries that arguments name through COPY, and writes `files` (name -> text)."""
    for arg in args:
        if arg.startswith(COPY + "/"):
            name = Path(arg[len(COPY) + 1 :]).parts[0]
            src, dst = world / name, cwd / name
            if dst.exists():
                continue
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy(src, dst)
    for name, text in (files or {}).items():
        (cwd / name).write_text(text)


def assert_refused(
    args: list[str], message: str | Usage, cwd: Path, world: Path, cwd_files: dict[str, str] | None = None
) -> None:
    """Runs `cli.py ARGS` in `cwd` and asserts that it is refused cleanly (see the module docstring). `message`: a
    part of the one stderr line, or usage(option) for a value typer itself cannot parse; `cwd_files`: files (name ->
    text) the working directory holds before the command runs."""
    from cli import app

    _prepare_cwd(args, cwd, world, cwd_files)
    args = [a.replace(W, str(world)).replace(COPY, str(cwd)) for a in args]
    roots = {"the world": world, "the working directory": cwd}
    before = {name: snapshot(root) for name, root in roots.items()}
    with process_logging():
        result = CliRunner().invoke(app, args)
    after = {name: snapshot(root) for name, root in roots.items()}

    problems = []
    if result.exit_code != 2:
        problems.append(f"exit code {result.exit_code}, not 2")
    stderr = result.stderr
    lines = stderr.splitlines()
    if isinstance(message, Usage):
        if "Error" not in stderr or message.option not in stderr:
            problems.append(f"typer's usage error should name {message.option}")
    else:
        expected = message.replace(W, str(world)).replace(COPY, str(cwd))
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr, not 1")
        if not any(expected in line for line in lines):
            problems.append(f"no line on stderr says {expected!r}")
    if "Traceback" in result.output or (result.exception and not isinstance(result.exception, SystemExit)):
        problems.append(f"a traceback / exception escaped: {result.exception!r}")
    for name, root in roots.items():
        problems += _differences(before[name], after[name], name)
        _remove_created(root, before[name], after[name])
    assert not problems, (
        "not refused cleanly:\n  "
        + "\n  ".join(problems)
        + f"\nargs: {args}\nexit code: {result.exit_code}\nstderr:\n{stderr}stdout:\n{result.stdout}"
    )
