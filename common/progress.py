"""The one shape of a progress report, so library code can feed whatever bar the caller shows."""

from __future__ import annotations

from collections.abc import Callable

# (task name, units done, units in total); the CLI turns each task name into a progress bar.
ProgressHook = Callable[[str, int, int], None]
