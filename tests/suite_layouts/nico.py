"""NICO as released: Animal/<class>/<context>/*.jpg and Vehicle/<class>/<context>/*.jpg (10 animal, 9 vehicle
classes). Animal classes get CaaM's 7 training contexts (1 image each) and 2 contexts outside that list (1 image
each), the first of them spelled with a space as folder names may be. The vehicle context names are illustrative
(CaaM lists none): 'airplane' has 9 contexts (7 with 2 images, 2 with 1), every other vehicle class 3 contexts
(2, 1 and 1 images)."""

from __future__ import annotations

from pathlib import Path

from data.suites.nico import ANIMAL_TRAIN_CONTEXTS, NICO_CLASSES
from tests.suite_layouts.images import tiny_image

ALL_ANIMAL_CONTEXTS = sorted({c for contexts in ANIMAL_TRAIN_CONTEXTS.values() for c in contexts})
VEHICLE_CONTEXTS = ("on_road", "in_city", "on_beach", "in_sky", "at_night", "in_snow", "on_bridge", "in_water", "aside")


def unseen_animal_contexts(name: str) -> list[str]:
    """The 2 OOD contexts the miniature gives an animal class."""
    return [c for c in ALL_ANIMAL_CONTEXTS if c not in ANIMAL_TRAIN_CONTEXTS[name]][:2]


def vehicle_context_sizes(name: str) -> dict[str, int]:
    if name == "airplane":
        return {c: 2 if i < 7 else 1 for i, c in enumerate(VEHICLE_CONTEXTS)}
    return {"on_road": 2, "in_city": 1, "at_night": 1}


def make(root: Path) -> Path:
    seed = 0
    for name in NICO_CLASSES["animal"]:
        unseen = unseen_animal_contexts(name)
        for context in (*ANIMAL_TRAIN_CONTEXTS[name], unseen[0].replace("_", " "), unseen[1]):
            seed += 1
            tiny_image(root / "Animal" / name / context / f"{seed}.jpg", seed=seed)
    for name in NICO_CLASSES["vehicle"]:
        for context, n in vehicle_context_sizes(name).items():
            for _ in range(n):
                seed += 1
                tiny_image(root / "Vehicle" / name / context / f"{seed}.jpg", seed=seed)
    return root
