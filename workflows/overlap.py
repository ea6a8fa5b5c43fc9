"""Where training meets evaluation: evaluation sets must not hold images of the run the model came from."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from common.artifact import ArtifactSpec
from common.errors import UserError
from common.run import DATA_FILES, RUN_FILE, Run, open_run, read_data_files
from data.labeled import DataError, images_among, resolved_paths
from data.specs import EvalSet, resolve_train_data

Log = Callable[[str], None]
log = logging.getLogger(__name__)


def check_not_trained_on(spec: ArtifactSpec, sets: list[EvalSet], allow: bool) -> None:
    """Refuses (or with `allow`, warns about) evaluation sets holding images the model was trained on, when the run
    it came from is still there to say what those were: the files it recorded when training started (common.run.
    DATA_FILES), whatever the data on disk says today; for a run made before that record, the training data as it
    resolves today, with a note saying so."""
    if not spec.source_run or not (Path(spec.source_run) / RUN_FILE).is_file():
        return
    trained = _trained_on(open_run(spec.source_run))
    if trained is None:
        return
    for ev in sets:
        seen = images_among(trained, ev.data)
        if seen:
            message = (
                f"{len(seen)} of the {len(ev.data.samples)} images of {ev.data.name!r} were in the training data "
                f"of {spec.source_run} (first: {seen[0]}); accuracy there does not measure generalization"
            )
            if not allow:
                raise DataError(message + "; --allow-overlap to evaluate anyway")
            log.warning(message)


def _trained_on(run: Run) -> set[str] | None:
    """The resolved paths of the run's training images, or None when nothing is left to compare with."""
    recorded = read_data_files(run)
    if recorded is not None:
        return recorded.get("train", set())
    log.warning(
        f"{run.path} was trained before runs recorded their files ({DATA_FILES}): "
        "overlap checked against its training data as it is on disk today"
    )
    try:
        return set(resolved_paths(resolve_train_data(run.record.data.source).train))
    except UserError:  # the training data moved or the run changed since: nothing left to compare with
        return None
