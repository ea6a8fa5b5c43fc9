"""Miniature copies of the standard suites' real layouts (exact folder names and split-file formats, a few tiny
images per class), made by one module per suite: `make(root) -> root`. Never downloads.

    python -m tests.suite_layouts pacs /tmp/PACS
"""
