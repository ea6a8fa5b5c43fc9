"""The single-process side of common/distributed.py: how work is split, torchrun's environment read and refused.
The collectives themselves run in tests/train/test_distributed.py, under torchrun."""

import pytest
import torch

from common.distributed import (
    TIMEOUT_VARIABLE,
    DistributedError,
    Ranks,
    collective_device,
    collective_timeout,
    current,
    from_environment,
)


def test_shards_interleave_like_distributed_sampler_and_cover_everything_once():
    items = list(range(11))
    shards = [Ranks(r, 3).shard(items) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(sum(shards, [])) == items
    assert Ranks(1, 3).shard([5]) == []  # fewer items than ranks: some ranks get none


def test_one_process_collectives_are_the_identity():
    ranks = Ranks()
    values = torch.tensor([1.0, 2.0])
    assert ranks.sum(values) is values and ranks.any(True) and not ranks.any(False)
    assert ranks.broadcast({"a": 1}) == {"a": 1}
    assert ranks.gather_rows(values)[0] is values
    assert ranks.is_main and not ranks.distributed


def test_torchrun_environment_is_read_and_a_broken_one_refused(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert from_environment() == Ranks()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert from_environment() == Ranks(1, 2, 1)
    with pytest.raises(DistributedError, match="WORLD_SIZE is set but MASTER_ADDR is not: start distributed jobs"):
        current()  # refused before joining anything
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DistributedError, match="RANK 2 is outside WORLD_SIZE 2"):
        from_environment()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(DistributedError, match="torchrun's environment is not usable"):
        from_environment()


def test_the_collective_timeout_comes_from_the_environment_and_a_bad_one_is_refused(monkeypatch):
    monkeypatch.delenv(TIMEOUT_VARIABLE, raising=False)
    assert collective_timeout().total_seconds() == 600
    monkeypatch.setenv(TIMEOUT_VARIABLE, "0.5")
    assert collective_timeout().total_seconds() == 30
    for bad in ("0", "ten", "-1"):
        monkeypatch.setenv(TIMEOUT_VARIABLE, bad)
        with pytest.raises(DistributedError, match=f"{TIMEOUT_VARIABLE}='{bad}': give the collective timeout"):
            collective_timeout()


def test_collectives_go_where_the_backend_carries_them():
    # dist.get_backend() returns a device map whole: "cpu:gloo,cuda:nccl" is not "nccl", but NCCL carries CUDA tensors.
    assert collective_device("cpu:gloo,cuda:nccl", 1) == torch.device("cuda", 1)
    assert collective_device("nccl", 0) == torch.device("cuda", 0)
    assert collective_device("gloo", 0) == torch.device("cpu")  # gloo alone, even beside a GPU
    assert collective_device("cpu:gloo,cuda:gloo", 0) == torch.device("cpu")
    assert collective_device("gloo", None) == torch.device("cpu")  # no GPU
