"""The built-in world's suites: `builtin`, the biased benchmark every command defaults to, and `builtin-holdout`, four
image shifts for evaluation only. They are generated on first use (data/world/benchmark.py) into the cache, so they
take no ROOT: `builtin` names the suite (training: its train and val splits; evaluation: its ID and OOD tests) and
`builtin:SPLIT` one split, as an evaluation set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from data.labeled import load_manifest, read_classnames
from data.suites.base import Suite, SuiteData, SuiteInfo, SuiteSet
from data.world import BUILTIN, BUILTIN_HOLDOUT
from data.world.benchmark import HOLDOUT_SPLITS, SPLITS, SplitSpec, ensure_benchmark, split_roles
from data.world.scenes import SHAPES

BENCHMARK = SuiteInfo(
    name=BUILTIN,
    title="the built-in benchmark",
    published="generated on first use by this project (data/world/), into PROREG_CACHE",
    layout="none: generated (builtin[:SPLIT])",
    roles="train and val splits (90% of each shape on its spurious background); id_test ID; ood_background, "
    "ood_sketch, ood_corrupt OOD",
    classes=len(SHAPES),
    generated=True,
)
HOLDOUT = SuiteInfo(
    name=BUILTIN_HOLDOUT,
    title="the built-in holdout suite",
    published="generated on first use by this project (data/world/), into PROREG_CACHE",
    layout="none: generated (builtin-holdout[:SPLIT])",
    roles="four image shifts, all OOD, that no method was tuned on: pixelate, invert, occlude, jpeg",
    classes=len(SHAPES),
    trains=False,
    generated=True,
)
# The splits each suite generates (a test swaps in smaller ones).
SPLITS_OF: dict[str, tuple[SplitSpec, ...]] = {BUILTIN: SPLITS, BUILTIN_HOLDOUT: HOLDOUT_SPLITS}


def _reader(info: SuiteInfo) -> Callable[[Path, str | None], SuiteData]:
    def read(root: Path, variant: str | None) -> SuiteData:
        """The splits generated under `root` (the cache): train and val as training data, id and ood splits as
        evaluation sets."""
        folder = ensure_benchmark(splits=SPLITS_OF[info.name], root=root)
        names = read_classnames(folder / "classnames.txt")
        roles = split_roles(folder)
        splits = {name: load_manifest(folder / f"{name}.csv", classes=list(names), name=name) for name in roles}
        return SuiteData(
            train=splits.get("train"),
            val=splits.get("val"),
            eval_sets=[SuiteSet(splits[n], role) for n, role in roles.items() if role in ("id", "ood")],
            classnames=names,
        )

    return read


SUITES = [Suite(BENCHMARK, _reader(BENCHMARK)), Suite(HOLDOUT, _reader(HOLDOUT))]
