"""Where training meets evaluation: evaluation sets must not hold images of the run the model came from."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from common.artifact import ArtifactSpec
from common.errors import UserError
from common.run import RUN_FILE, open_run
from data.labeled import DataError, shared_images
from data.specs import EvalSet, resolve_train_data

Log = Callable[[str], None]
log = logging.getLogger(__name__)


def check_not_trained_on(spec: ArtifactSpec, sets: list[EvalSet], allow: bool) -> None:
    """Refuses (or with `allow`, warns about) evaluation sets holding images the model was trained on, when the run
    it came from is still there to say what those were."""
    if not spec.source_run or not (Path(spec.source_run) / RUN_FILE).is_file():
        return
    try:
        train = resolve_train_data(open_run(spec.source_run).record.data.source).train
    except UserError:  # the training data moved or the run changed since: nothing left to compare with
        return
    for ev in sets:
        seen = shared_images(train, ev.data)
        if seen:
            message = (
                f"{len(seen)} of the {len(ev.data.samples)} images of {ev.data.name!r} were in the training data "
                f"of {spec.source_run} (first: {seen[0]}); accuracy there does not measure generalization"
            )
            if not allow:
                raise DataError(message + "; --allow-overlap to evaluate anyway")
            log.warning(message)
