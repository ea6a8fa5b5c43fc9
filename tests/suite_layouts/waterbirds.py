"""Waterbirds as group_DRO ships it: waterbird_complete95_forest2water2/ with CUB species folders
(<nnn>.<Species>/<Species>_<n>_<id>.jpg) and metadata.csv (img_id,img_filename,y,split,place,place_filename);
2 images per (class, place) group in each of the three splits: 24 images."""

from __future__ import annotations

from pathlib import Path

from data.suites.waterbirds import FOLDER
from tests.suite_layouts.images import tiny_image

SPECIES = {0: "026.Bronzed_Cowbird", 1: "001.Black_footed_Albatross"}  # y -> a CUB species of that class
PLACES = {0: "/b/bamboo_forest", 1: "/o/ocean"}  # place -> a Places category of that kind
PER_GROUP = 2


def make(root: Path) -> Path:
    folder = root / FOLDER
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    img_id = 0
    for split in (0, 1, 2):
        for y in (0, 1):
            for place in (0, 1):
                for _ in range(PER_GROUP):
                    img_id += 1
                    species = SPECIES[y].split(".", 1)[1]
                    rel = f"{SPECIES[y]}/{species}_{img_id:04d}_{100000 + img_id}.jpg"
                    tiny_image(folder / rel, seed=img_id)
                    rows.append(f"{img_id},{rel},{y},{split},{place},{PLACES[place]}/{img_id:08d}.jpg")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root
