"""A run resumed on another number of processes keeps its global micro-batch (the steps do not change)."""

import pytest

from common.errors import OptionError
from common.run import Parallelism
from train.config import TrainConfig
from train.run_dirs import fit_to_world


def test_a_resume_keeps_the_global_micro_batch_and_refuses_an_uneven_split(tmp_path):
    cfg = TrainConfig(batch_size=6, accum_steps=2)
    saved = Parallelism(world_size=2, per_process_batch=6, accum_steps=2, global_batch=24)
    assert fit_to_world(cfg, saved, 1, tmp_path).batch_size == 12
    assert fit_to_world(cfg, saved, 4, tmp_path).batch_size == 3
    with pytest.raises(OptionError, match=r"global micro-batch of 12 images \(6 per process x 2\) does not split"):
        fit_to_world(cfg, saved, 5, tmp_path)
