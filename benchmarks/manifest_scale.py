"""An ImageNet-size manifest: load time and memory held per image, the column table against a list of Samples.

    python benchmarks/manifest_scale.py [--rows 1281167] [--repeats 3] [--json FILE]

Writes a manifest shaped like ImageNet's training set (1000 synset folders, `train/<wnid>/<wnid>_<i>.JPEG,<wnid>`;
the files need not exist: loading a manifest reads only the CSV), then, side by side in one run: the median time of
`load_manifest` (data.labeled: parse, check for repeated rows, labels as codes, a SampleTable) over --repeats, the
memory it holds per image (tracemalloc, a separate load), and what the same samples take as the list of `Sample`s
that every manifest used to become. Also the time of the stratified validation holdout that training draws from it,
and what recording the files a run trains on costs (common.run.DATA_FILES: resolving every path, then the gzip file):
its time and its size per image.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from common.run import DATA_FILES, write_data_files
from data.labeled import load_manifest, resolved_paths
from data.specs import _stratified_holdout


def write_manifest(path: Path, rows: int) -> Path:
    rng = random.Random(0)
    wnids = sorted({f"n{rng.randrange(10**7, 10**8):08d}" for _ in range(1000)})
    per_class = -(-rows // len(wnids))
    with open(path, "w") as f:
        f.write("path,label\n")
        for k in range(rows):
            wnid = wnids[k // per_class]
            f.write(f"train/{wnid}/{wnid}_{k % per_class}.JPEG,{wnid}\n")
    return path


def held_bytes(make) -> tuple[object, int]:
    """What `make()` returns and the bytes it still holds (tracemalloc)."""
    tracemalloc.start()
    try:
        out = make()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_281_167)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(Path(tmp) / "train.csv", args.rows)
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            data = load_manifest(manifest)
            seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        _stratified_holdout(data, 0.1, 0)
        holdout = time.perf_counter() - start
        start = time.perf_counter()
        write_data_files(Path(tmp), {"train": resolved_paths(data)})
        record_seconds, record_bytes = time.perf_counter() - start, (Path(tmp) / DATA_FILES).stat().st_size
        del data
        data, table_bytes = held_bytes(lambda: load_manifest(manifest))
        as_list, list_bytes = held_bytes(lambda: list(data.samples))  # type: ignore[attr-defined]
    figures = {
        "rows": args.rows,
        "load_seconds_median": statistics.median(seconds),
        "holdout_seconds": holdout,
        "table_bytes_per_image": table_bytes / args.rows,
        "list_of_samples_bytes_per_image": list_bytes / args.rows,
        "file_record_seconds": record_seconds,
        "file_record_bytes_per_image": record_bytes / args.rows,
    }
    print(
        f"{args.rows} rows: load_manifest {figures['load_seconds_median']:.2f} s (median of {args.repeats}), "
        f"validation holdout {holdout:.2f} s"
    )
    print(
        f"held per image: SampleTable {figures['table_bytes_per_image']:.0f} B, "
        f"list of Samples {figures['list_of_samples_bytes_per_image']:.0f} B "
        f"({list_bytes / max(table_bytes, 1):.1f}x)"
    )
    print(
        f"the run's record of its files ({DATA_FILES}): {record_seconds:.1f} s, "
        f"{record_bytes / 1e6:.1f} MB ({figures['file_record_bytes_per_image']:.1f} B per image)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
