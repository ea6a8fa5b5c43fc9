"""Dataset specs as the CLI takes them, resolved to labeled image lists.

A SPEC is one of:
  SUITE[/VARIANT]:ROOT  a dataset suite read as its authors ship it (data/suites/; `cli.py datasets` lists them)
  builtin[:SPLIT]       the built-in benchmark, a suite generated on first use (training: its train/val splits;
                        evaluation: its ID and OOD tests, or the one SPLIT), e.g. builtin:ood_sketch
  builtin-holdout[:SPLIT]  the held-out image-shift suite (evaluation only: four OOD sets no method was tuned on)
  [id:|ood:][NAME=]PATH  an image folder (one sub-folder per class) or a CSV manifest (path,label[,group]);
                        the prefix gives its role in an evaluation report (default id), NAME its name there
                        (default: the folder's or the file's; a second set of one name gets -2)
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.builtin import BUILTIN
from common.run import DataSource
from data.labeled import DataError, LabeledImages, load_dataset, read_classnames, shared_images
from data.loading import DecodedImages
from data.samples import indices_by_class, labels_of, take
from data.suites.base import SuiteData, SuiteSet
from data.suites.registry import SuiteSpec, parse_suite_spec, prompt_templates, read_suite

ROLES = ("id", "ood")
SET_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"  # a name given to a set, NAME=PATH
log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    data: LabeledImages
    role: str  # "id" or "ood"
    # A set scored on part of the model's logits (ImageNet-R: 200 of 1000; ObjectNet: 113 classes, each one or more
    # ImageNet classes): for each of the set's classes, the model class indices whose highest logit is its score.
    # None: the set's labels are model class indices and every logit competes.
    logit_pool: list[list[int]] | None = None
    # The set's images decoded once and held (serve.evaluate.hold_decoded, keep_decoded), for this preprocessing.
    decoded: DecodedImages | None = None
    decoded_for: dict | None = None


@dataclass
class TrainData:
    train: LabeledImages
    val: LabeledImages
    classes: list[str]
    prompts: list[str]  # display names for the prompt templates, in class order


def builtin_classnames() -> dict[str, str]:
    """The built-in benchmark's classes and their display names."""
    spec = parse_suite_spec(BUILTIN)
    assert spec is not None  # a registered suite
    return read_suite(spec).classnames


def _stratified_holdout(data: LabeledImages, fraction: float, seed: int) -> tuple[LabeledImages, LabeledImages]:
    """Splits off `fraction` of every class as validation, deterministically (the same split for a seed)."""
    rng = random.Random(seed)
    keep: list[int] = []
    held: list[int] = []
    for members in indices_by_class(data.samples, len(data.classes)):
        rng.shuffle(members)
        n_val = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        held += members[:n_val]
        keep += members[n_val:]
    return (
        LabeledImages(data.name, data.classes, take(data.samples, keep)),
        LabeledImages(f"{data.name}-val", data.classes, take(data.samples, held)),
    )


def resolve_train_data(source: DataSource) -> TrainData:
    """Training and validation sets, plus class order and prompt names (a suite's own, unless --classnames)."""
    spec = source.train
    suite_spec = parse_suite_spec(spec)
    if suite_spec:
        return _suite_train_data(source, suite_spec)
    names = read_classnames(Path(source.classnames)) if source.classnames else None
    train = load_dataset(spec, classes=list(names) if names else None)
    return _checked_train_data(source, train, load_dataset(source.val, train.classes) if source.val else None, names)


def _suite_train_data(source: DataSource, spec: SuiteSpec) -> TrainData:
    """A suite's ID training data; its validation split, else --val-data, else a held-out fraction of train."""
    info = spec.suite.info
    if not info.trains:
        raise DataError(f"{source.train}: {info.title} is for evaluation only; it has no training split")
    if spec.split:
        raise DataError(
            f"training data {source.train}: {spec.split!r} is one evaluation set of {info.title}; train on {info.name}"
        )
    data = read_suite(spec, training=True)
    if data.train is None:
        raise DataError(f"{source.train}: the suite gave no training split")
    names = read_classnames(Path(source.classnames)) if source.classnames else data.classnames
    train = data.train.reorder(list(names))
    if source.val:
        val: LabeledImages | None = load_dataset(source.val, classes=train.classes)
    else:
        val = data.val.reorder(train.classes, allow_missing=True) if data.val else None
    for note in data.notes:
        log.warning("%s: partial copy: %s", source.train, note)
    return _checked_train_data(source, train, val, names)


def _checked_train_data(
    source: DataSource, train: LabeledImages, val: LabeledImages | None, names: dict[str, str] | None
) -> TrainData:
    """The training data, with a held-out validation fraction when `val` is None; refuses an empty set, images in
    both, and classes without a training image."""
    if val is None:
        train, val = _stratified_holdout(train, source.val_fraction, source.seed)
    if not train.samples:
        raise DataError(f"training set is empty: {source.train}")
    both = shared_images(train, val)
    if both:
        raise DataError(
            f"{len(both)} image(s) are in both the training and the validation data (first: {both[0]}): the best "
            "checkpoint would be chosen on images it was trained on"
        )
    present = set(np.unique(labels_of(train.samples)).tolist())
    missing = [c for i, c in enumerate(train.classes) if i not in present]
    if missing:
        raise DataError(f"training set has no images of class(es): {', '.join(missing)}")
    prompts = [names[c] if names else c.replace("_", " ") for c in train.classes]
    return TrainData(train=train, val=val, classes=train.classes, prompts=prompts)


@dataclass(frozen=True)
class ZeroShotClasses:
    """What a zero-shot text head is built over: the class names (the label order), the names the prompts show, and
    the prompt templates."""

    classes: list[str]
    prompts: list[str]
    templates: list[str]


def role_and_path(spec: str) -> tuple[str, str | None, str]:
    """(role, name, path) of a folder or manifest spec, `[id:|ood:][NAME=]PATH` (id by default; name None: the
    data's own). A suite after a role or a name is refused: its sets carry their own roles and names. `NAME=` is a
    name only when NAME is a plain word and the whole spec is not an existing path (a folder may hold `=`)."""
    role, _, path = spec.partition(":") if spec.split(":", 1)[0] in ROLES else ("id", "", spec)
    word, equals, rest = path.partition("=")
    named = bool(equals and rest) and re.fullmatch(SET_NAME, word) is not None and not Path(path).exists()
    name, path = (word, rest) if named else (None, path)
    if path != spec and parse_suite_spec(path):
        given = spec.removesuffix(path)
        raise DataError(
            f"--data {spec}: a suite's sets carry their own roles and names; drop '{given}' (--data {path})"
        )
    return role, name, path


def zero_shot_classes(specs: list[str]) -> ZeroShotClasses:
    """The classes of the evaluation sets `specs`, for a zero-shot model made for them (`eval --checkpoint builtin`):
    a suite's model classes (ImageNet's 1,000 for ImageNet-R too) with its display names and its templates, the
    built-in suites' classes, a folder's or a manifest's classes (underscores shown as spaces), in the order first
    met. Templates: the first suite's own, else DEFAULT_TEMPLATES. Sets whose classes are not all within one of them are
    refused: one model's logits would then compete over classes a set does not have, and its accuracy would depend
    on which other sets were named."""
    names: dict[str, str] = {}
    templated: SuiteSpec | None = None  # the first suite with templates of its own
    widest: tuple[str, set[str]] = ("", set())
    for spec in specs or [BUILTIN]:
        suite_spec = parse_suite_spec(spec)
        if suite_spec:
            found = read_suite(suite_spec).classnames
            templated = templated or (suite_spec if suite_spec.suite.info.templates else None)
        else:
            path = role_and_path(spec)[2]
            found = {c: c.replace("_", " ") for c in load_dataset(path).classes}
        for name, shown in found.items():
            names.setdefault(name, shown)
        if not (set(found) <= widest[1] or widest[1] <= set(found)):
            other = sorted(set(found) ^ widest[1])[0]
            raise DataError(
                f"--data {widest[0]} and {spec} have different classes (e.g. {other!r}): a zero-shot model is made "
                "for one set of classes; evaluate them apart"
            )
        widest = max(widest, (spec, set(found)), key=lambda named: len(named[1]))
    return ZeroShotClasses(list(names), list(names.values()), prompt_templates(templated))


def _unique_names(sets: list[EvalSet], specs: list[str]) -> list[EvalSet]:
    """Reports key datasets by name: two sets called `test` (from different folders) become test and test-2, unless
    the user named them so (`--data test=PATH` twice), which is refused."""
    given = [role_and_path(spec)[1] for spec in specs if not parse_suite_spec(spec)]
    twice = sorted({name for name in given if name and given.count(name) > 1})
    if twice:
        raise DataError(f"two --data sets are named {twice[0]!r}: a report keys its sets by name; name them apart")
    seen: dict[str, int] = {}
    for ev in sets:
        seen[ev.data.name] = seen.get(ev.data.name, 0) + 1
        if seen[ev.data.name] > 1:
            ev.data.name = f"{ev.data.name}-{seen[ev.data.name]}"
    return sets


def resolve_eval_sets(specs: list[str], classes: list[str] | None = None) -> list[EvalSet]:
    """Evaluation sets with their roles; `classes` (the model's) fixes the label order of every set."""
    sets: list[EvalSet] = []
    for spec in specs or [BUILTIN]:
        suite_spec = parse_suite_spec(spec)
        if suite_spec:
            sets += _suite_eval_sets(spec, suite_spec, classes)
        else:
            role, name, path = role_and_path(spec)
            data = load_dataset(path, name=name)
            # An evaluation set may cover only some of the model's classes; an unknown class is an error.
            sets.append(EvalSet(data.reorder(classes, allow_missing=True) if classes else data, role))
    return _unique_names(sets, specs)


def _suite_eval_sets(spec: str, suite_spec: SuiteSpec, classes: list[str] | None) -> list[EvalSet]:
    """A suite's evaluation sets, each labelled in the model's class order, or pooled over its logits where the
    suite scores a set on part of them."""
    data = read_suite(suite_spec)
    for note in data.notes:
        log.warning("%s: partial copy: %s", spec, note)
    sets = []
    for part in _chosen_sets(data, suite_spec):
        if part.logit_pool is None:
            sets.append(EvalSet(part.data.reorder(classes, allow_missing=True) if classes else part.data, part.role))
            continue
        model = classes or list(data.classnames)
        index = {name: i for i, name in enumerate(model)}
        unknown = sorted({c for cs in part.logit_pool.values() for c in cs} - set(index))
        if unknown:
            raise DataError(
                f"{spec}: {part.data.name} is scored on model classes the model lacks ({len(unknown)}, first: "
                f"{unknown[0]}); evaluate a model of the suite's classes"
            )
        pool = [[index[c] for c in part.logit_pool[name]] for name in part.data.classes]
        sets.append(EvalSet(part.data, part.role, logit_pool=pool))
    return sets


def _chosen_sets(data: SuiteData, spec: SuiteSpec) -> list[SuiteSet]:
    """A suite's evaluation sets, or the one its spec names (NAME:SPLIT: any of its sets, the training and validation
    splits too, which evaluate as ID)."""
    if spec.split is None:
        return data.eval_sets
    every = data.eval_sets + [SuiteSet(part, "id") for part in (data.train, data.val) if part is not None]
    chosen = [part for part in every if part.data.name == spec.split]
    if not chosen:
        names = ", ".join(part.data.name for part in [*every[len(data.eval_sets) :], *data.eval_sets])
        raise DataError(f"no split {spec.split!r} in {spec.suite.info.title} ({names})")
    return chosen[:1]
