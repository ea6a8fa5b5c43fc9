"""Turns the installed tensorrt-stubs into a stub folder that mypy can use, so our TensorRT code is type-checked on
machines without TensorRT.

tensorrt-stubs (pybind11-stubgen output) ships `tensorrt/` without a py.typed, so mypy skips it, and
`tensorrt_bindings/tensorrt.pyi` does not even parse. This copies its .pyi files to OUT (default build/trt-stubs) and
patches them mechanically:
  - parameters named after keywords (`in`) get a trailing underscore;
  - parameters without a default after ones with a default get `= ...`;
  - annotations naming the builtin `bool` become `builtins.bool`: the module-level `bool: DataType` shadows it, which
    would make every `-> bool` an error, and so Any;
  - modules used in annotations but never imported (`typing_extensions`, for Buffer) are imported.
The stub generator's other slips (`...` or `capsule` as types, self types of list bindings, `= None` defaults of
non-Optional parameters) are Any or do not touch what our calls are checked against; pyproject.toml silences them.

    python scripts/trt_stubs.py [OUT] && MYPYPATH=build/trt-stubs mypy ...
"""

from __future__ import annotations

import argparse
import ast
import builtins
import keyword
import shutil
import sys
from importlib import metadata
from pathlib import Path, PurePosixPath

DISTRIBUTION = "tensorrt-stubs"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "build" / "trt-stubs"


def installed_stubs() -> dict[PurePosixPath, Path]:
    """The distribution's .pyi files: path inside site-packages -> file on disk."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        sys.exit(f"{DISTRIBUTION} is not installed: pip install '{DISTRIBUTION}>=10.0' (or pip install -e '.[dev]')")
    stubs = {PurePosixPath(str(f)): Path(str(dist.locate_file(f))) for f in dist.files or [] if f.suffix == ".pyi"}
    if not stubs:
        sys.exit(f"{DISTRIBUTION} {dist.version} is installed but lists no .pyi files (reinstall it)")
    return dict(sorted(stubs.items()))


def _split_params(params: str) -> list[str]:
    """Splits a parameter list at top-level commas (annotations hold brackets, defaults may hold quoted commas)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(params):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(params[start:i].strip())
            start = i + 1
    parts.append(params[start:].strip())
    return [p for p in parts if p]


def _fix_signature(line: str) -> tuple[str, list[str]]:
    """Rewrites one single-line `def` the parser rejected; returns the line and what changed."""
    head, _, rest = line.partition("(")
    close = len(rest) - 1 - rest[::-1].index(")")  # the `)` before `-> ...:` or `:`
    params, tail = rest[:close], rest[close:]
    fixed, notes, defaulted, keyword_only = [], [], False, False
    for param in _split_params(params):
        name = param.split(":", 1)[0].split("=", 1)[0].strip()
        if keyword.iskeyword(name):
            param = param.replace(name, name + "_", 1)
            notes.append(f"parameter `{name}` -> `{name}_`")
            name += "_"
        if name.startswith("*"):
            keyword_only = True  # what follows `*` or `*args` needs no default
        elif "=" in param:
            defaulted = True
        elif defaulted and not keyword_only and name != "/":
            param += " = ..."
            notes.append(f"default `= ...` for `{name}`")
        fixed.append(param)
    return f"{head}({', '.join(fixed)}{tail}", notes


def fix_parse_errors(text: str, name: str) -> tuple[str, list[str]]:
    lines = text.split("\n")
    report = []
    while True:
        try:
            ast.parse("\n".join(lines), filename=name)
        except SyntaxError as err:
            index = (err.lineno or 0) - 1
            line = lines[index] if 0 <= index < len(lines) else ""
            new, notes = _fix_signature(line) if line.lstrip().startswith("def ") else (line, [])
            if not notes:
                message = f"{name}:{index + 1}: cannot patch this parse error ({err.msg}): {line.strip()}"
                raise SystemExit(message) from err
            lines[index] = new
            func = line.lstrip()[4:].split("(", 1)[0]
            report += [f"{name}:{index + 1}: {func}: {note}" for note in notes]
        else:
            return "\n".join(lines), report


def _annotations(tree: ast.Module) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            found += [a.annotation for a in every if a is not None and a.annotation is not None]
            found += [node.returns] if node.returns is not None else []
    return found


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def fix_annotations(text: str, name: str) -> tuple[str, list[str]]:
    """Annotations that mypy would turn into Any: builtins shadowed by a module-level name (`bool: DataType`,
    tensorrt's boolean data type) and `module.Type` whose module is never imported (typing_extensions.Buffer)."""
    tree = ast.parse(text, filename=name)
    defined = _top_level_names(tree)
    shadowed: list[ast.Name] = []
    imports: set[str] = set()
    for annotation in _annotations(tree):
        for node in ast.walk(annotation):
            if isinstance(node, ast.Name) and node.id in defined and hasattr(builtins, node.id):
                shadowed.append(node)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id not in defined:
                imports.add(node.value.id)
    lines = text.split("\n")
    for node in sorted(shadowed, key=lambda n: (n.lineno, n.col_offset), reverse=True):  # right to left: offsets hold
        line = lines[node.lineno - 1].encode()  # ast offsets count UTF-8 bytes
        lines[node.lineno - 1] = (
            line[: node.col_offset] + f"builtins.{node.id}".encode() + line[node.end_col_offset :]
        ).decode()
    imports |= {"builtins"} if shadowed else set()
    if imports:
        after_future = 1 if lines and lines[0].startswith("from __future__") else 0
        lines[after_future:after_future] = [f"import {module}" for module in sorted(imports)]
    counts: dict[str, int] = {}
    for node in shadowed:
        counts[node.id] = counts.get(node.id, 0) + 1
    report = [f"{name}: {n} annotation(s) `{b}` -> `builtins.{b}`" for b, n in sorted(counts.items())]
    report += [f"{name}: added `import {module}`" for module in sorted(imports)]
    return "\n".join(lines), report


def write_stubs(out: Path) -> list[str]:
    stubs = installed_stubs()
    for package in sorted({rel.parts[0] for rel in stubs if len(rel.parts) > 1}):
        shutil.rmtree(out / package, ignore_errors=True)  # nothing stale from an earlier tensorrt-stubs version
    report = []
    for rel, source in stubs.items():
        raw = source.read_bytes().decode("utf-8")
        text, fixes = fix_parse_errors(raw.replace("\r\n", "\n"), str(rel))
        text, more = fix_annotations(text, str(rel))
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="\r\n" if "\r\n" in raw else "\n")  # as shipped (CRLF)
        report += fixes + more
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    out = parser.parse_args().out
    report = write_stubs(out)
    print(f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)} -> {out} (use MYPYPATH={out})")
    print("\n".join(f"  patched {line}" for line in report) or "  nothing to patch")


if __name__ == "__main__":
    main()
