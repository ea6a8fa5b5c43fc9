"""tests/train/test_flyp.py in a fresh interpreter (see the note there): every one of its tests must pass."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.test_flyp import CHILD


@pytest.mark.slow
def test_flyp_tests_pass_in_a_fresh_interpreter():
    here = Path(__file__)
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here.with_name("test_flyp.py"))],
        cwd=here.parents[2],
        env={**os.environ, CHILD: "1"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
    assert " passed" in child.stdout and "skipped" not in child.stdout, child.stdout[-2000:]
