"""`compare_recipes`: recipes x knobs x seeds trained (train), each with its WiSE-FT alphas evaluated (serve), the
scores stored per cell so that a second run trains and measures nothing again; the leaderboard (serve)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from common.artifact import ArtifactSpec
from common.builtin import BUILTIN
from common.errors import OptionError, UserError
from common.files import atomic_write_json, writable_dir
from common.run import RUN_FILE, DataSource, Run, open_run
from common.typed_json import from_json
from data.specs import EvalSet, resolve_train_data
from serve.evaluate import evaluate, hold_decoded
from serve.intervals import pack_correct
from serve.leaderboard import (
    ZERO_SHOT,
    AlphaScore,
    Cell,
    SetScore,
    StoredScores,
    leaderboard_table,
    write_leaderboard,
)
from serve.runner import Runner
from serve.torch_runner import TorchRunner
from train.config import TrainConfig
from train.recipes import (
    DEFAULT_WISE_ALPHA,
    RECOMMENDED,
    WISE_SUFFIX,
    knob_settings,
    recipe_config,
    resolve_recipe,
)
from train.wise import Interpolation, base_state, wise_classifier
from workflows.report_page import write_report_page
from workflows.tracking import Tracking

Log = Callable[[str], None]
log = logging.getLogger(__name__)


COMPARE_SCORES = "compare-scores.json"  # a cell's evaluations, beside its run


@dataclass
class CompareSpec:
    """What `compare_recipes` trains and measures."""

    recipes: list[str]  # train.recipes names, without +wise (every method gets its WiSE-FT curve)
    seeds: list[int]
    data: str  # training data spec
    sets: list[EvalSet]  # ID and OOD sets the choice is made on
    holdout: list[EvalSet]  # shifts nobody tuned for, reported apart
    alphas: list[float]  # WiSE-FT alphas evaluated per cell, besides 0 (the zero-shot model) and 1 (the cell)
    fixed_alpha: float = DEFAULT_WISE_ALPHA  # the WiSE-FT row at a fixed alpha
    train_options: dict = field(default_factory=dict)  # TrainConfig fields for every cell (epochs, max_steps, ...)
    batch_size: int = 256


@dataclass(frozen=True)
class CompareCell:
    recipe: str
    knob: str  # e.g. "alpha=2", "" for a method without a knob
    seed: int
    config: TrainConfig

    @property
    def folder(self) -> str:
        return f"{self.recipe}{'-' + self.knob.replace('=', '').replace(',', '-') if self.knob else ''}-s{self.seed}"


def compare_cells(spec: CompareSpec) -> list[CompareCell]:
    """Every cell with its training config, in training order; every option is checked here, before anything is
    written (a bad seed or epoch count is one line, not a half-made comparison folder)."""
    if not spec.recipes or not spec.seeds:
        raise OptionError("a comparison needs at least one method and one seed")
    cells = []
    for name in spec.recipes:
        recipe = resolve_recipe(name)
        for value in recipe.knob_values or (None,):
            settings = knob_settings(recipe, value) if value is not None else {}
            label = ",".join(f"{k}={v:g}" for k, v in settings.items())
            for seed in spec.seeds:
                cfg = recipe_config(name, settings, seed=seed, data=spec.data, **spec.train_options)
                cells.append(CompareCell(name, label, seed, cfg))
    return cells


def _trained_cell(out: Path, cell: CompareCell, tracking: Tracking) -> Run:
    """The cell's finished run: trained, resumed when an earlier comparison stopped inside it, or as found; what
    is trained now is logged to `tracking`."""
    from train.trainer import train  # looked up at each call: tests stand in for it

    hooks: dict[str, Any] = {"on_start": tracking.start, "on_record": tracking.log_record} if tracking.names else {}

    if (out / RUN_FILE).is_file():
        run = open_run(out)
        theirs = TrainConfig.from_dict(run.record.train_config, str(out / RUN_FILE)).to_dict()  # typed as ours
        ours = cell.config.to_dict()
        differ = sorted(k for k in ours if k not in ("num_workers", "device") and theirs.get(k) != ours[k])
        if differ:  # a comparison folder holds one comparison: old cells of other settings would mix in silently
            raise UserError(f"{out} was trained with other settings ({', '.join(differ)}): use another --out")
        if run.record.status == "finished":
            return run
        return train(None, out, resume=True, **hooks)
    return train(cell.config, out, **hooks)


def _score(runner: Runner, run: Run, spec: CompareSpec) -> AlphaScore:
    """One model on the run's validation split and on every set of the comparison."""
    val_report, _ = evaluate(runner, [_validation_set(run)], spec.batch_size)
    report, results = evaluate(runner, spec.sets + spec.holdout, spec.batch_size)
    holdout = {ev.data.name for ev in spec.holdout}
    empty = [name for name, d in {**val_report.datasets, **report.datasets}.items() if d.top1 is None]
    if empty or val_report.summary.id_top1 is None:
        raise UserError(f"{empty[0] if empty else 'the validation split'}: no image could be scored")
    sets = {}
    for name, d in report.datasets.items():
        correct = results[name].logits.argmax(axis=1) == results[name].labels  # per image: the intervals' input
        role = "holdout" if name in holdout else d.role
        sets[name] = SetScore(role, d.top1 or 0.0, d.worst_group_top1, len(correct), pack_correct(correct))
    return AlphaScore(val_top1=val_report.summary.id_top1, sets=sets)


def _stored(file: Path, names: list[str]) -> dict[float, AlphaScore]:
    """The scores a comparison stored in `file` for the sets `names`, by alpha; {} when there are none (or they are
    of other sets)."""
    if not file.is_file():
        return {}
    try:
        stored = from_json(StoredScores, json.loads(file.read_text()), str(file), UserError)
    except (json.JSONDecodeError, UserError) as err:  # torn by a kill, or foreign: measured again
        log.warning(f"{file} is unreadable and is measured again ({str(err).splitlines()[0]})")
        return {}
    if stored.sets != names or any(s.correct is None for a in stored.alphas.values() for s in a.sets.values()):
        return {}  # other sets, or stored before per-image results were: measured again
    return {float(a): score for a, score in stored.alphas.items()}


def _store(file: Path, names: list[str], scores: dict[float, AlphaScore]) -> None:
    atomic_write_json(file, asdict(StoredScores(names, {f"{a:g}": score for a, score in scores.items()})))


def _scored_cell(run: Run, cell: Cell, spec: CompareSpec) -> Cell:
    """Evaluates the run at alpha 1 and each WiSE-FT alpha, reusing what an earlier comparison stored."""
    file = run.path / COMPARE_SCORES
    names = sorted(ev.data.name for ev in spec.sets + spec.holdout)
    scores = _stored(file, names)
    wanted = sorted({*spec.alphas, 1.0} - {0.0})
    if any(alpha not in scores for alpha in wanted):
        interpolation = Interpolation(run, base_state(run, None))
        for alpha in wanted:
            model = interpolation.classifier(alpha)
            scores[alpha] = _score(
                TorchRunner(model, ArtifactSpec(classifier=run.classifier), str(run.path)), run, spec
            )
        _store(file, names, scores)
    cell.alphas = {**{a: scores[a] for a in wanted}, 0.0: _zero_shot_score(run, spec)}  # not an earlier run's extras
    return cell


@functools.cache
def _held_validation(source: DataSource, preprocess_json: str) -> EvalSet:
    data = resolve_train_data(source).val
    return hold_decoded([EvalSet(data, "id")], json.loads(preprocess_json))[0]


def _validation_set(run: Run) -> EvalSet:
    """A run's validation images, decoded once per process for every run with the same data and preprocessing."""
    return _held_validation(run.record.data.source, json.dumps(run.classifier.preprocess, sort_keys=True))


def compare_recipes(
    spec: CompareSpec,
    out: Path,
    on_cell: Callable[[int, int, str], None] | None = None,
    tracking: Tracking | None = None,
) -> list:
    """Trains every (method, knob, seed) cell into out/cells/, evaluates each with its WiSE-FT alphas, and writes
    leaderboard.md/.json/.png into `out`. A finished cell (run and scores) is not trained or evaluated again. With
    `tracking`, the comparison is one tracked run with its leaderboard, and each cell trained now a run nested in it."""
    todo = compare_cells(spec)
    writable_dir(out, "comparison folder")
    tracking = tracking or Tracking([], "compare")
    tracking.start(out, {"data": spec.data, "recipes": ",".join(spec.recipes), "seeds": str(spec.seeds)})
    cells: list[Cell] = []
    for i, cell in enumerate(todo):
        if on_cell:
            on_cell(i, len(todo), cell.folder)
        with tracking.child("compare-cell") as cell_tracking:
            run = _trained_cell(out / "cells" / cell.folder, cell, cell_tracking)
            if i == 0:  # every cell's model takes the same preprocessing: decode the sets once
                preprocess = run.classifier.preprocess
                spec = replace(
                    spec, sets=hold_decoded(spec.sets, preprocess), holdout=hold_decoded(spec.holdout, preprocess)
                )
            cells.append(_scored_cell(run, Cell(cell.recipe, cell.knob, cell.seed, str(run.path)), spec))
            cell_tracking.log_summary(cell_values(cells[-1]))
    if on_cell:
        on_cell(len(todo), len(todo), "leaderboard")
    seeds = f"seed{'s' if len(spec.seeds) > 1 else ''} {', '.join(map(str, spec.seeds))}"
    title = f"{spec.data}: {', '.join(spec.recipes)}, {seeds}"
    alpha = resolve_recipe(RECOMMENDED).wise_alpha  # the default recipe's row: the method's WiSE-FT row at its alpha
    default_row = (RECOMMENDED.partition(WISE_SUFFIX)[0] + WISE_SUFFIX, f"{alpha:g}") if alpha is not None else None
    rows = write_leaderboard(cells, cells[0].alphas[0.0], spec.fixed_alpha, out, title, default_row)
    write_report_page(out, f"Comparison: {title}")
    tracking.log_table("leaderboard", *leaderboard_table(rows))
    return rows


def cell_values(cell: Cell) -> dict[str, float | None]:
    """A scored cell's results for the trackers: per WiSE-FT alpha, validation, ID and mean OOD top-1."""
    values: dict[str, float | None] = {}
    for alpha, score in cell.alphas.items():
        at = f"wise/alpha_{alpha:g}"
        values |= {
            f"{at}/val_top1": score.val_top1,
            f"{at}/id_top1": score.id_top1(),
            f"{at}/ood_mean": score.mean("ood"),
        }
    return values


def _zero_shot_score(run: Run, spec: CompareSpec) -> AlphaScore:
    """The zero-shot model (alpha 0 of any cell) on the run's validation split and the sets, measured once per
    training-data source (a split drawn with the seed differs between seeds) and stored beside the cells."""
    source = run.record.data.source
    key = hashlib.sha256(json.dumps(asdict(source), sort_keys=True).encode()).hexdigest()[:10]
    file = run.path.parent.parent / f"zero-shot-{key}.json"
    names = sorted(ev.data.name for ev in spec.sets + spec.holdout)
    stored = _stored(file, names)
    if 0.0 not in stored:
        model = wise_classifier(run, 0.0, base_state(run, None))
        stored = {0.0: _score(TorchRunner(model, ArtifactSpec(classifier=run.classifier), ZERO_SHOT), run, spec)}
        _store(file, names, stored)
    return stored[0.0]


def numbers(text: str, option: str, kind: type = float) -> list:
    """'0,1,2' -> the numbers of an option that takes a comma-separated list."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise OptionError(f"{option} {text!r}: give comma-separated {kind.__name__}s") from None
    if not values:
        raise OptionError(f"{option}: give at least one value")
    return values


def compare_spec(
    recipes: str,
    seeds: str,
    data: str,
    eval_specs: list[str],
    holdout_specs: list[str],
    alphas: tuple[str, float],
    train_options: dict,
) -> CompareSpec:
    """The comparison the compare command's options describe, every option checked before anything is trained:
    recipes and seeds comma-separated, the training data, the sets chosen on and held out, and the WiSE-FT alphas
    (those swept, comma-separated, and the leaderboard's fixed one); `train_options`: TrainConfig fields for every
    cell."""
    from data.loading import check_some_readable
    from data.specs import resolve_eval_sets
    from data.world import BUILTIN_HOLDOUT
    from train.recipes import WISE_SUFFIX
    from train.wise import check_alpha, parse_alphas

    names = [m.strip() for m in recipes.split(",") if m.strip()]
    if not names:
        raise OptionError("--recipes: give at least one recipe")
    for name in names:
        if WISE_SUFFIX in name:
            raise OptionError(f"--recipes {name}: every recipe is measured with WiSE-FT already; name it alone")
        resolve_recipe(name)
    check_alpha(alphas[1], "--wise-alpha")
    swept, wise_alpha = parse_alphas(alphas[0]), alphas[1]
    seed_list = sorted(set(numbers(seeds, "--seeds", int)))
    if not eval_specs and data != BUILTIN:
        raise OptionError(
            "--eval-data: give the ID and OOD sets to compare on (the built-in ones are for builtin data)"
        )
    holdout_specs = holdout_specs or ([BUILTIN_HOLDOUT] if data == BUILTIN else [])
    train_data = resolve_train_data(DataSource(data))
    check_some_readable(train_data.train)  # before the comparison folder is made
    classes = train_data.classes  # every set in the label order the runs will have
    sets = resolve_eval_sets(eval_specs, classes)
    if {ev.role for ev in sets} != {"id", "ood"}:
        raise OptionError("--eval-data: give at least one ID set and one OOD set (id:SPEC, ood:SPEC)")
    held_out = resolve_eval_sets(holdout_specs, classes) if holdout_specs else []
    clash = sorted({ev.data.name for ev in sets} & {ev.data.name for ev in held_out})
    if clash:
        raise OptionError(f"a tuned and a held-out set are both called {clash[0]!r}: rename one (reports key by name)")
    alpha_list = sorted(set(swept + [wise_alpha]))
    return CompareSpec(names, seed_list, data, sets, held_out, alpha_list, wise_alpha, train_options)
