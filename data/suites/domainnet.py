"""DomainNet (Peng et al., ICCV 2019, "Moment Matching for Multi-Source Domain Adaptation"): 345 classes in 6 domains.

As its authors distribute it (http://ai.bu.edu/M3SDA/, the cleaned version): ROOT/<domain>/<class>/*.jpg and one
train and one test split file per domain, <domain>_train.txt and <domain>_test.txt, in ROOT (copies also keep them in
splits/, image_list/ or txt/), lines 'clipart/aircraft_carrier/clipart_001_000018.jpg 0': the image path relative to
ROOT and a 0-based label. The label numbers define the class order: `CLASSES` is that order (TFDS and the Transfer
Learning Library index the same list by the split files' labels; t-shirt is 327, as Dassl's note on painting_train.txt
says); each line's folder must be the class its label names.

`domainnet/<domain>:ROOT`: VARIANT is the ID domain, trained on its train split (a fraction held out for validation);
its test split is the ID test, and the test splits of the other domains of the four-domain subset clipart, painting,
real, sketch are OOD sets, one per domain. The default is ProReg's setting (Zhu et al., AAAI 2023; its released code):
sketch ID, the clipart, painting and real test splits OOD, 345 classes. Two differences from that code: it validates
on sketch's test split (here the ID test is never used to pick a checkpoint) and pools the three OOD test splits into
one set (here each is its own set; the report's OOD mean averages them). infograph or quickdraw as the ID domain take
all four subset domains as OOD.

A partial copy: fewer classes in the ID train split than 345 trains on those (a note says how many), and images of the
other classes are left out of the evaluation sets with a note; fewer images than published is a note per split.
"""

from __future__ import annotations

from pathlib import Path

from data.labeled import DataError, LabeledImages, Sample
from data.suites.base import (
    Suite,
    SuiteData,
    SuiteInfo,
    SuiteSet,
    keep_labels,
    missing_counts,
    missing_data,
    read_split_lines,
    refuse_absent,
    require,
)

DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
SUBSET = ("clipart", "painting", "real", "sketch")  # ProReg's four domains: the OOD sets come from these
SPLIT_FOLDERS = (".", "splits", "image_list", "txt")
# The split files' label order (label i is CLASSES[i]); folder names, so no spaces.
CLASSES = tuple(
    """
aircraft_carrier airplane alarm_clock ambulance angel animal_migration ant anvil apple arm asparagus axe backpack
banana bandage barn baseball baseball_bat basket basketball bat bathtub beach bear beard bed bee belt bench bicycle
binoculars bird birthday_cake blackberry blueberry book boomerang bottlecap bowtie bracelet brain bread bridge
broccoli broom bucket bulldozer bus bush butterfly cactus cake calculator calendar camel camera camouflage campfire
candle cannon canoe car carrot castle cat ceiling_fan cello cell_phone chair chandelier church circle clarinet clock
cloud coffee_cup compass computer cookie cooler couch cow crab crayon crocodile crown cruise_ship cup diamond
dishwasher diving_board dog dolphin donut door dragon dresser drill drums duck dumbbell ear elbow elephant envelope
eraser eye eyeglasses face fan feather fence finger fire_hydrant fireplace firetruck fish flamingo flashlight
flip_flops floor_lamp flower flying_saucer foot fork frog frying_pan garden garden_hose giraffe goatee golf_club
grapes grass guitar hamburger hammer hand harp hat headphones hedgehog helicopter helmet hexagon hockey_puck
hockey_stick horse hospital hot_air_balloon hot_dog hot_tub hourglass house house_plant hurricane ice_cream jacket
jail kangaroo key keyboard knee knife ladder lantern laptop leaf leg light_bulb lighter lighthouse lightning line
lion lipstick lobster lollipop mailbox map marker matches megaphone mermaid microphone microwave monkey moon
mosquito motorbike mountain mouse moustache mouth mug mushroom nail necklace nose ocean octagon octopus onion oven
owl paintbrush paint_can palm_tree panda pants paper_clip parachute parrot passport peanut pear peas pencil penguin
piano pickup_truck picture_frame pig pillow pineapple pizza pliers police_car pond pool popsicle postcard potato
power_outlet purse rabbit raccoon radio rain rainbow rake remote_control rhinoceros rifle river roller_coaster
rollerskates sailboat sandwich saw saxophone school_bus scissors scorpion screwdriver sea_turtle see_saw shark sheep
shoe shorts shovel sink skateboard skull skyscraper sleeping_bag smiley_face snail snake snorkel snowflake snowman
soccer_ball sock speedboat spider spoon spreadsheet square squiggle squirrel stairs star steak stereo stethoscope
stitches stop_sign stove strawberry streetlight string_bean submarine suitcase sun swan sweater swing_set sword
syringe table teapot teddy-bear telephone television tennis_racquet tent The_Eiffel_Tower The_Great_Wall_of_China
The_Mona_Lisa tiger toaster toe toilet tooth toothbrush toothpaste tornado tractor traffic_light train tree triangle
trombone truck trumpet t-shirt umbrella underwear van vase violin washing_machine watermelon waterslide whale wheel
windmill wine_bottle wine_glass wristwatch yoga zebra zigzag
""".split()
)
IMAGES = {  # the cleaned version's split files, lines per file (as TFDS counts them)
    "clipart-train": 33525,
    "clipart-test": 14604,
    "infograph-train": 36023,
    "infograph-test": 15582,
    "painting-train": 50416,
    "painting-test": 21850,
    "quickdraw-train": 120750,
    "quickdraw-test": 51750,
    "real-train": 120906,
    "real-test": 52041,
    "sketch-train": 48212,
    "sketch-test": 20916,
}
INFO = SuiteInfo(
    name="domainnet",
    title="DomainNet (Peng et al., ICCV 2019)",
    published="http://ai.bu.edu/M3SDA/",
    layout="ROOT/<domain>/<class>/*.jpg and <domain>_{train,test}.txt in ROOT (or ROOT/splits, ROOT/image_list, "
    "ROOT/txt), lines 'clipart/aircraft_carrier/clipart_001_000018.jpg 0' (labels from 0); domains clipart, "
    "infograph, painting, quickdraw, real, sketch",
    roles="VARIANT is the ID domain (train split; its test split as the ID test); the test splits of the other "
    "domains of clipart, painting, real, sketch are OOD (ProReg: sketch ID; clipart, painting, real OOD)",
    classes=len(CLASSES),
    variants=DOMAINS,
    default_variant="sketch",
    templates=("a photo of a {}.",),  # ProReg's prompt
)


def _split_file(root: Path, domain: str, split: str) -> Path:
    name = f"{domain}_{split}.txt"
    for folder in SPLIT_FOLDERS:
        if (root / folder / name).is_file():
            return root / folder / name
    raise missing_data(INFO, f"split file {name} not found (looked in {root} and its splits/, image_list/, txt/)")


def _label(fields: list[str], path: Path) -> int:
    """The line's label, checked against the class its image's folder names."""
    if len(fields) != 2 or not fields[1].isdigit():
        raise DataError(f"{path}: not a DomainNet split line ('PATH LABEL'): {' '.join(fields)}")
    label = int(fields[1])
    if label >= len(CLASSES):
        raise DataError(f"{path}: label {label} outside 0..{len(CLASSES) - 1} ({fields[0]})")
    folder = Path(fields[0]).parent.name
    if folder != CLASSES[label]:
        raise DataError(f"{path}: label {label} is {CLASSES[label]}, but {fields[0]} is in the folder {folder}/")
    return label


def _split(root: Path, domain: str, split: str) -> LabeledImages:
    """One split file's images, labelled in `CLASSES` order; files listed but absent are an error."""
    path = _split_file(root, domain, split)
    require(root / domain, f"domain folder {domain}/", INFO)
    samples: list[Sample] = []
    absent: list[Path] = []
    for fields in read_split_lines(path, INFO):
        label = _label(fields, path)
        file = root / fields[0]
        if file.is_file():
            samples.append(Sample(file, label, domain))
        else:
            absent.append(file)
    refuse_absent(INFO, path, len(samples) + len(absent), absent)
    return LabeledImages(f"{domain}-{split}", list(CLASSES), samples)


def read(root: Path, domain: str | None) -> SuiteData:
    assert domain is not None  # DomainNet has a default variant
    train = _split(root, domain, "train")
    id_test = _split(root, domain, "test")
    ood = [_split(root, d, "test") for d in SUBSET if d != domain]
    parts = [train, id_test, *ood]
    notes = missing_counts({p.name: IMAGES[p.name] for p in parts}, {p.name: len(p.samples) for p in parts})
    labels = sorted({s.label for s in train.samples})
    if len(labels) < len(CLASSES):
        notes.append(f"classes: {len(labels)} of {len(CLASSES)} in {domain}_train.txt (the model gets those)")
    sets = [SuiteSet(keep_labels(f"domainnet-{id_test.name}", [id_test], labels, notes), "id")] + [
        SuiteSet(keep_labels(f"domainnet-{d.name}", [d], labels, notes), "ood") for d in ood
    ]
    return SuiteData(
        train=keep_labels(f"domainnet-{train.name}", [train], labels, notes),
        val=None,
        eval_sets=sets,
        classnames={CLASSES[label]: CLASSES[label].replace("_", " ") for label in labels},
        notes=notes,
    )


SUITES = [Suite(INFO, read)]
