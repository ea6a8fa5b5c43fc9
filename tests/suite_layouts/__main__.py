"""python -m tests.suite_layouts SUITE ROOT: writes the miniature layout of SUITE (a module here) under ROOT."""

import importlib
import sys
from pathlib import Path

if __name__ == "__main__":
    suite, root = sys.argv[1], Path(sys.argv[2])
    print(importlib.import_module(f"tests.suite_layouts.{suite.replace('-', '_')}").make(root))
