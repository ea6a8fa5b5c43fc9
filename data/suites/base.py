"""What a suite reader gives: the suite's description (`SuiteInfo`), and the data read from a root (`SuiteData`).

A suite assigns the roles its papers use: the ID training and validation data (None for an evaluation-only suite
such as ImageNet-R), and evaluation sets marked id or ood. An evaluation set whose classes are a subset of the
model's (ImageNet-R's 200 of ImageNet's 1000) or that pools several model classes into one (ObjectNet's 113
classes, each one or more ImageNet classes) says so in `SuiteSet.logit_pool`: it is scored on those logits only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data.labeled import DataError, LabeledImages, Sample


class MissingSuiteData(DataError):
    """A suite's folder or split file is not where its layout puts it; the message names what is missing, where it
    was looked for and where the dataset is published."""


@dataclass(frozen=True)
class SuiteInfo:
    name: str  # SUITE in the spec, e.g. "pacs"
    title: str  # the dataset and its paper, e.g. "PACS (Li et al., ICCV 2017)"
    published: str  # where to get it (a URL)
    layout: str  # the expected layout under ROOT, one line (or a few, joined by '; ')
    roles: str  # which data is ID and which OOD, one line
    classes: int  # number of classes
    variants: tuple[str, ...] = ()  # VARIANT choices (e.g. the held-out domain); () when it takes none
    default_variant: str | None = None  # the variant used when the spec names none (None: one must be named)
    trains: bool = True  # False: evaluation only (no training split)
    templates: tuple[str, ...] | None = None  # the prompt templates its papers use (None: the run's own)
    # Made by this project on first use (the built-in world) instead of read from a ROOT: its spec is NAME[:SPLIT],
    # SPLIT one of its sets (as an evaluation set), and its reader is given the cache folder as the root.
    generated: bool = False


@dataclass
class SuiteSet:
    """One evaluation set of a suite, with its role.

    `logit_pool`: for a set scored on part of the model's logits, each of the set's classes (by name, as in
    `data.classes`) -> the model classes whose highest logit is that class's score; None: the set's classes are the
    model's own (matched by name) and every logit competes. data.specs.EvalSet.logit_pool is the same pool, resolved
    to the model's class indices."""

    data: LabeledImages
    role: str  # "id" or "ood"
    logit_pool: dict[str, list[str]] | None = None


@dataclass
class SuiteData:
    """A suite read from its root."""

    train: LabeledImages | None  # ID training data; None for an evaluation-only suite
    val: LabeledImages | None  # the suite's own validation split; None: a fraction of train is held out
    eval_sets: list[SuiteSet]
    classnames: dict[str, str]  # class name as in the data -> the name the prompts use, in the model's class order
    notes: list[str] = field(default_factory=list)  # what a partial copy lacks (counts), for a warning


@dataclass(frozen=True)
class Suite:
    info: SuiteInfo
    read: Callable[[Path, str | None], SuiteData]  # (root, variant or None) -> the data
    # A cheaper read for evaluation, where listing the training split costs (ImageNet's 1.28 M files): its data's
    # train is None. None: `read` serves both.
    read_for_eval: Callable[[Path, str | None], SuiteData] | None = None


def missing_data(info: SuiteInfo, problem: str) -> MissingSuiteData:
    """The error for a suite's folder or file that is not there: `problem` (what is missing and where it was looked
    for, e.g. 'split file x.txt not found (looked in ROOT)'), then the expected layout and where to get the suite."""
    return MissingSuiteData(f"{info.title}: {problem}; expected layout: {info.layout}; get it from {info.published}")


def require(path: Path, what: str, info: SuiteInfo) -> Path:
    """`path`, or MissingSuiteData naming `what` is missing, where it was looked for and where to get the suite."""
    if not path.exists():
        raise missing_data(info, f"{what} not found (looked for {path})")
    return path


def refuse_absent(info: SuiteInfo, listed_in: Path, listed: int, absent: Sequence[Path]) -> None:
    """MissingSuiteData when any image file that `listed_in` (a split or metadata file) lists is absent: how many of
    the `listed` images, and the first absent one."""
    if absent:
        raise MissingSuiteData(
            f"{info.title}: {len(absent)} of {listed} images listed in {listed_in} are missing (first: {absent[0]})"
        )


def choose_variant(info: SuiteInfo, variant: str | None) -> str:
    """The variant to read: the one named, else the suite's default; an unknown one is refused."""
    if variant is None:
        if info.default_variant is None:
            raise DataError(f"{info.name} needs a variant: {info.name}/VARIANT:ROOT, VARIANT one of {_list(info)}")
        return info.default_variant
    if variant not in info.variants:
        raise DataError(f"{info.name}: unknown variant {variant!r}; one of {_list(info)}")
    return variant


def _list(info: SuiteInfo) -> str:
    return ", ".join(info.variants) or "(none)"


def missing_counts(expected: dict[str, int], found: dict[str, int]) -> list[str]:
    """One note per part (a domain, a split) found with fewer items than the suite ships, e.g. 'clipart: 1200 of
    48833 images'; a part not found at all is named as missing."""
    notes = []
    for part, n in expected.items():
        got = found.get(part, 0)
        if got < n:
            notes.append(f"{part}: {got} of {n} images" if got else f"{part}: missing")
    return notes


def read_split_lines(path: Path, info: SuiteInfo) -> Iterable[list[str]]:
    """The whitespace-separated fields of each non-empty line of a split file (UTF-8)."""
    require(path, f"split file {path.name}", info)
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields:
                yield fields


def keep_labels(name: str, parts: list[LabeledImages], labels: list[int], notes: list[str]) -> LabeledImages:
    """`parts` joined as `name`, on the classes `labels` of theirs (in that order: class i is their labels[i]),
    without images of the other classes, counted in `notes` (a partial copy whose ID training data lacks a class)."""
    index = {label: i for i, label in enumerate(labels)}
    samples = [s for part in parts for s in part.samples]
    kept = [Sample(s.path, index[s.label], s.group) for s in samples if s.label in index]
    if len(kept) < len(samples):
        notes.append(f"{name}: {len(samples) - len(kept)} image(s) of classes without training images left out")
    return LabeledImages(name, [parts[0].classes[label] for label in labels], kept)
