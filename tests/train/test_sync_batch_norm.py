"""Under torchrun on GPUs, BatchNorm layers become SyncBatchNorm, whose forward is a collective: every rank must run
the same forwards, or the others wait forever. SyncBatchNorm's forward needs CUDA and a process group, so these check
the decisions that keep the ranks in step, on the CPU (the GPU runs themselves cannot be made here)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from common.distributed import Ranks
from data.loading import Batch
from train.methods.tes import TextProjection
from train.session import ModelState
from train.trainer import step_work


class Stop(Exception):
    pass


def _norm_mode_with_one_row(projection: TextProjection) -> bool:
    """Whether the projection's norm layer runs in training mode for a batch of one feature row."""
    seen: list[bool] = []

    def record(module, _inputs):
        seen.append(module.training)
        raise Stop

    projection.layers[1].register_forward_pre_hook(record)
    with pytest.raises(Stop):
        projection.train()(torch.randn(1, 8))
    return seen[0]


def test_tes_projection_keeps_sync_batch_norm_in_training_mode_for_one_row():
    assert _norm_mode_with_one_row(TextProjection(8, 4)) is False  # plain BatchNorm: the running statistics
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(TextProjection(8, 4))
    assert isinstance(synced.layers[1], torch.nn.SyncBatchNorm)
    assert _norm_mode_with_one_row(synced) is True  # its statistics are the global batch's; the collective runs


def _batch(n: int) -> Batch:
    labels = torch.zeros(n, dtype=torch.long)
    return Batch(torch.zeros(n, 3, 8, 8), labels, labels.clone(), torch.arange(n), 0)


def _session(forward: torch.nn.Module) -> SimpleNamespace:
    models = SimpleNamespace(text_tower=None, forward=forward)
    models.syncs_batch_norm = ModelState.syncs_batch_norm.func(models)  # the session's own rule, on this stand-in
    record = SimpleNamespace(classifier=SimpleNamespace(image_size=8))
    return SimpleNamespace(models=models, ranks=Ranks(rank=1, world=2), record=record)


@pytest.mark.parametrize("synced, expected", [(False, [False]), (True, [False, True, True])])
def test_every_micro_batch_runs_on_every_rank_when_batch_norm_is_synchronized(synced, expected):
    forward = TextProjection(8, 4)
    if synced:
        forward = torch.nn.SyncBatchNorm.convert_sync_batchnorm(forward)
    work = step_work(_session(forward), [_batch(2), _batch(0), _batch(0)])  # this rank's shares at an epoch's end
    assert [placeholder for _, placeholder in work] == expected
    assert all(len(batch.labels) >= 1 for batch, _ in work)
