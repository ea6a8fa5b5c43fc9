"""The suites by name, found in this package's modules (each defines SUITES), and the spec that names one."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import NamedTuple

import data.suites as package
from common.artifact import DEFAULT_TEMPLATES
from common.errors import did_you_mean
from common.files import cache_root
from data.labeled import DataError
from data.suites.base import Suite, SuiteData, choose_variant, missing_data

_NOT_READERS = {"base", "registry"}


@functools.cache
def suites() -> dict[str, Suite]:
    """Every suite by name, in the order `datasets` lists them."""
    found: dict[str, Suite] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name not in _NOT_READERS):
        for suite in importlib.import_module(f"{package.__name__}.{module}").SUITES:
            if suite.info.name in found:
                raise RuntimeError(f"two suites are named {suite.info.name!r}")
            found[suite.info.name] = suite
    return found


class SuiteSpec(NamedTuple):
    suite: Suite
    variant: str | None
    root: Path  # the cache folder for a generated suite
    split: str | None = None  # a generated suite's one set, NAME:SPLIT


def parse_suite_spec(spec: str) -> SuiteSpec | None:
    """`SUITE[/VARIANT]:ROOT`, or a generated suite's `NAME[:SPLIT]` -> the suite, variant, root and split; None when
    `spec` does not start with a suite's name (a path)."""
    head, sep, rest = spec.partition(":")
    name, _, variant = head.partition("/")
    suite = suites().get(name.lower())
    if suite is None and sep and rest and not Path(spec).exists():
        hint = did_you_mean(name, list(suites()))
        if hint:  # `pac:/data/PACS`: a mistyped suite, not a path
            raise DataError(f"no suite {name!r} in data {spec!r}{hint} (cli.py datasets lists the suites)")
    if suite is None or (not sep and not suite.info.generated):
        return None
    if suite.info.generated:
        if variant:
            raise DataError(f"data {spec!r}: {name} takes no variant ({name}[:SPLIT])")
        return SuiteSpec(suite, None, cache_root(), rest or None)
    if not rest:
        raise DataError(f"data {spec!r} names the suite {name} but no root folder ({name}[/VARIANT]:ROOT)")
    return SuiteSpec(suite, variant or None, Path(rest).expanduser())


def prompt_templates(spec: SuiteSpec | None) -> list[str]:
    """The prompt templates for data when none are typed: its suite's own (ImageNet's 80), else DEFAULT_TEMPLATES."""
    return list(spec and spec.suite.info.templates or DEFAULT_TEMPLATES)


def read_suite(spec: SuiteSpec, training: bool = False) -> SuiteData:
    """The suite's data under its root, for the variant named (or the default one); `training`: its training split
    is needed (an evaluation may skip listing it)."""
    info = spec.suite.info
    variant = choose_variant(info, spec.variant) if info.variants else None
    if spec.variant and not info.variants:
        raise DataError(f"{info.name} takes no variant (got {spec.variant!r}): {info.name}:ROOT")
    if not info.generated and not spec.root.is_dir():
        raise missing_data(info, f"no such folder: {spec.root}")
    read = spec.suite.read_for_eval if spec.suite.read_for_eval and not training else spec.suite.read
    return read(spec.root, variant)
