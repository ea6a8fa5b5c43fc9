"""mypy checks our TensorRT code against tensorrt-stubs (patched by scripts/trt_stubs.py), with no TensorRT here."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TENSORRT_FILES = ["common/tensorrt_compat.py", "export/tensorrt_build.py", "serve/tensorrt_runner.py"]


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed("tensorrt-stubs") or not _installed("mypy"),
    reason="needs tensorrt-stubs and mypy (pip install -e '.[dev]')",
)


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trt-stubs")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "trt_stubs.py"), str(out)], check=True, capture_output=True)
    return out


def _mypy(stubs: Path, files: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    from mypy import api

    monkeypatch.setenv("MYPYPATH", str(stubs))
    monkeypatch.chdir(ROOT)
    cache = stubs.parent / "mypy-cache"  # shared by both tests, away from the project's own cache
    stdout, stderr, status = api.run(["--config-file", "pyproject.toml", "--cache-dir", str(cache), *files])
    return stdout + stderr, status


def test_tensorrt_code_type_checks_against_the_stubs(stubs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output, status = _mypy(stubs, TENSORRT_FILES, monkeypatch)
    assert status == 0, output


def test_a_wrong_tensorrt_call_fails_type_checking(
    stubs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves that `tensorrt` resolves to the stubs, not to an untyped module or Any."""
    wrong = tmp_path / "wrong.py"
    wrong.write_text('import tensorrt as trt\n\ntrt.Builder(trt.Logger()).create_network("x")\n')
    output, status = _mypy(stubs, [str(wrong)], monkeypatch)
    assert status == 1, output
    assert 'Argument 1 to "create_network" of "Builder" has incompatible type "str"; expected "int"' in output
