"""Each tracker's files read back with the tracker's own reader: TensorBoard's event accumulator, MLflow's client,
and W&B's record schema (wandb_internal_pb2.Record) over the LevelDB-style log an offline run writes (W&B 0.31
reads it in Go only; the framing is 7-byte headers in 32 KiB blocks, as W&B's datastore documents)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of every scalar in the event files of `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def tensorboard_texts(folder: Path) -> dict[str, str]:
    """tag -> the last text logged under it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    texts = {}
    for tag in events.Tags()["tensors"]:
        if tag.endswith("/text_summary"):
            texts[tag.removesuffix("/text_summary")] = events.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
    return texts


def mlflow_client(folder: Path) -> Any:
    """The client of the default local store the CLI used when run in `folder` (mlflow.db there)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def mlflow_runs(client: Any, experiment: str = "proreg-clip") -> list[Any]:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def wandb_records(folder: Path) -> list[Any]:
    """The records of the offline W&B run(s) under `folder` (a run directory), in order."""
    from wandb.proto import wandb_internal_pb2

    block = 32768
    records = []
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        data, pos, parts = path.read_bytes(), 7, b""
        assert data[:4] == b":W&B", f"{path} is not a W&B run file"
        while pos + 7 <= len(data):
            if block - pos % block < 7:  # a block's tail too short for a header is padding
                pos += block - pos % block
                continue
            _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            if kind == 0 and length == 0:
                break
            parts, pos = parts + data[pos + 7 : pos + 7 + length], pos + 7 + length
            if kind in (1, 4):  # a full record, or the last part of one
                record = wandb_internal_pb2.Record()
                record.ParseFromString(parts)
                records.append(record)
                parts = b""
    return records


def wandb_history(folder: Path) -> dict[str, dict[int, float]]:
    """key -> {step: value} of every logged number."""
    history: dict[str, dict[int, float]] = {}
    for record in wandb_records(folder):
        if record.WhichOneof("record_type") == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for key, value in row.items():
                if not key.startswith("_") and isinstance(value, (int, float)):
                    history.setdefault(key, {})[int(row["_step"])] = value
    return history


def wandb_summary(folder: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for record in wandb_records(folder):
        if record.WhichOneof("record_type") == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update})
    return summary


def wandb_config(folder: Path) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for record in wandb_records(folder):
        kind = record.WhichOneof("record_type")
        items = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return config
