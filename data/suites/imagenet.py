"""ImageNet-1k and the five distribution shifts WiSE-FT (Wortsman et al., CVPR 2022) and FLYP (Goyal et al., CVPR 2023)
evaluate it on: ImageNet-V2, ImageNet-Sketch, ImageNet-R, ImageNet-A and ObjectNet.

`imagenet:ROOT` is ILSVRC2012 as it is commonly laid out: ROOT/train/<wnid>/*.JPEG and ROOT/val/<wnid>/*.JPEG (the
validation images sorted into synset folders; WiSE-FT's val_in_folder/ is accepted too). train/ is the ID training
data (it has no validation split of its own: the framework holds out a fraction); val/ is the ID evaluation set. The
1000 classes are the sorted wnids (class index 0..999, the order of torchvision and every released ImageNet model),
named for the prompts by OpenAI's CLIP class names and prompted with its 80 templates, as WiSE-FT and FLYP do.

The shifts are evaluation-only suites (no training split), each one OOD set of the same 1000-class model:
- `imagenet-v2:ROOT`: ImageNetV2 matched-frequency as released, imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg
  (folder = class index; the imagenetv2_pytorch loader WiSE-FT uses renames it ImageNetV2-matched-frequency/).
- `imagenet-sketch:ROOT`: sketch/<wnid>/*.JPEG, all 1000 classes.
- `imagenet-r:ROOT` and `imagenet-a:ROOT`: imagenet-r/<wnid>/*.jpg and imagenet-a/<wnid>/*.jpg, 200 classes each,
  scored on those 200 logits only (WiSE-FT's CLASS_SUBLIST masks, the same wnids as Hendrycks et al.'s releases).
- `objectnet:ROOT`: objectnet-1.0/images/<folder>/*.png with the mappings/ ObjectNet ships; the 113 ObjectNet classes
  that overlap ImageNet, each scored as the highest logit of its ImageNet classes (WiSE-FT's project_logits); images of
  the other 200 classes are not evaluated. WiSE-FT also crops a 2-pixel border off each ObjectNet image, which this
  reader cannot express (preprocessing is the model's): expect accuracies a little off theirs.
ROOT may be the dataset folder itself or the folder holding it (ROOT/imagenet-r/, ROOT/objectnet-1.0/, ...). A class
folder that is absent or short of images is reported as a partial copy with counts; a missing split folder is an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

from data.labeled import IMAGE_EXTENSIONS, DataError, LabeledImages
from data.samples import SampleTable
from data.suites.base import (
    MissingSuiteData,
    Suite,
    SuiteData,
    SuiteInfo,
    SuiteSet,
    missing_counts,
    missing_data,
    require,
)

# Published image counts (ObjectNet: the images of its 113 ImageNet classes, of 50,000 in 313 classes).
IMAGES = {
    "imagenet-train": 1_281_167,
    "imagenet-val": 50_000,
    "imagenet-v2": 10_000,
    "imagenet-sketch": 50_889,
    "imagenet-r": 30_000,
    "imagenet-a": 7_500,
    "objectnet": 18_574,
}
# Class indices (into WNIDS) of ImageNet-R's and ImageNet-A's 200 classes, as WiSE-FT's CLASS_SUBLIST lists them.
IMAGENET_R_INDICES = (
    1, 2, 4, 6, 8, 9, 11, 13, 22, 23, 26, 29, 31, 39, 47, 63, 71, 76, 79, 84, 90, 94, 96, 97, 99, 100, 105, 107, 113,
    122, 125, 130, 132, 144, 145, 147, 148, 150, 151, 155, 160, 161, 162, 163, 171, 172, 178, 187, 195, 199, 203, 207,
    208, 219, 231, 232, 234, 235, 242, 245, 247, 250, 251, 254, 259, 260, 263, 265, 267, 269, 276, 277, 281, 288, 289,
    291, 292, 293, 296, 299, 301, 308, 309, 310, 311, 314, 315, 319, 323, 327, 330, 334, 335, 337, 338, 340, 341, 344,
    347, 353, 355, 361, 362, 365, 366, 367, 368, 372, 388, 390, 393, 397, 401, 407, 413, 414, 425, 428, 430, 435, 437,
    441, 447, 448, 457, 462, 463, 469, 470, 471, 472, 476, 483, 487, 515, 546, 555, 558, 570, 579, 583, 587, 593, 594,
    596, 609, 613, 617, 621, 629, 637, 657, 658, 701, 717, 724, 763, 768, 774, 776, 779, 780, 787, 805, 812, 815, 820,
    824, 833, 847, 852, 866, 875, 883, 889, 895, 907, 928, 931, 932, 933, 934, 936, 937, 943, 945, 947, 948, 949, 951,
    953, 954, 957, 963, 965, 967, 980, 981, 983, 988,
)  # fmt: skip
IMAGENET_A_INDICES = (
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79, 89, 90, 94, 96, 97, 99, 105, 107, 108,
    110, 113, 124, 125, 130, 132, 143, 144, 150, 151, 207, 234, 235, 254, 277, 283, 287, 291, 295, 298, 301, 306, 307,
    308, 309, 310, 311, 313, 314, 315, 317, 319, 323, 324, 326, 327, 330, 334, 335, 336, 347, 361, 363, 372, 378, 386,
    397, 400, 401, 402, 404, 407, 411, 416, 417, 420, 425, 428, 430, 437, 438, 445, 456, 457, 461, 462, 470, 472, 483,
    486, 488, 492, 496, 514, 516, 528, 530, 539, 542, 543, 549, 552, 557, 561, 562, 569, 572, 573, 575, 579, 589, 606,
    607, 609, 614, 626, 627, 640, 641, 642, 643, 658, 668, 677, 682, 684, 687, 701, 704, 719, 736, 746, 749, 752, 758,
    763, 765, 768, 773, 774, 776, 779, 780, 786, 792, 797, 802, 803, 804, 813, 815, 820, 823, 831, 833, 835, 839, 845,
    847, 850, 859, 862, 870, 879, 880, 888, 890, 897, 900, 907, 913, 924, 932, 933, 934, 937, 943, 945, 947, 951, 954,
    956, 957, 959, 971, 972, 980, 981, 984, 986, 987, 988,
)  # fmt: skip
# OpenAI's 80 ImageNet prompts (lambdas in open_clip) as format strings with one {}.
TEMPLATES = tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)
OBJECTNET_MAPPINGS = (
    "folder_to_objectnet_label.json",
    "objectnet_to_imagenet_1k.json",
    "imagenet_to_label_2012_v2",
    "pytorch_to_imagenet_2012_id.json",
)


def _info(name: str, title: str, published: str, layout: str, roles: str, classes: int, trains: bool) -> SuiteInfo:
    return SuiteInfo(name, title, published, layout, roles, classes, trains=trains, templates=TEMPLATES)


IMAGENET = _info(
    "imagenet",
    "ImageNet-1k (ILSVRC2012; Russakovsky et al., IJCV 2015)",
    "https://image-net.org/download.php (ILSVRC2012 train and validation images)",
    "ROOT/train/<wnid>/*.JPEG and ROOT/val/<wnid>/*.JPEG (validation images sorted into the 1000 wnid folders; or "
    "val_in_folder/), ROOT or ROOT/imagenet",
    "train/ is ID training data (a fraction held out for validation); val/ is the ID test set; as WiSE-FT and FLYP",
    1000,
    True,
)
IMAGENET_V2 = _info(
    "imagenet-v2",
    "ImageNetV2 matched-frequency (Recht et al., ICML 2019)",
    "https://github.com/modestyachts/ImageNetV2 (imagenetv2-matched-frequency.tar.gz)",
    "ROOT/imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg (folder = ImageNet class index; or "
    "ImageNetV2-matched-frequency/, or ROOT itself)",
    "one OOD set over ImageNet's 1000 classes",
    1000,
    False,
)
IMAGENET_SKETCH = _info(
    "imagenet-sketch",
    "ImageNet-Sketch (Wang et al., NeurIPS 2019)",
    "https://github.com/HaohanWang/ImageNet-Sketch",
    "ROOT/sketch/<wnid>/*.JPEG, 1000 wnid folders (or ROOT itself)",
    "one OOD set over ImageNet's 1000 classes",
    1000,
    False,
)
IMAGENET_R = _info(
    "imagenet-r",
    "ImageNet-R (Hendrycks et al., ICCV 2021)",
    "https://github.com/hendrycks/imagenet-r (imagenet-r.tar)",
    "ROOT/imagenet-r/<wnid>/*.jpg, 200 wnid folders (or ROOT itself)",
    "one OOD set scored on the 200 logits of its classes",
    200,
    False,
)
IMAGENET_A = _info(
    "imagenet-a",
    "ImageNet-A (Hendrycks et al., CVPR 2021)",
    "https://github.com/hendrycks/natural-adv-examples (imagenet-a.tar)",
    "ROOT/imagenet-a/<wnid>/*.jpg, 200 wnid folders (or ROOT itself)",
    "one OOD set scored on the 200 logits of its classes",
    200,
    False,
)
OBJECTNET = _info(
    "objectnet",
    "ObjectNet (Barbu et al., NeurIPS 2019)",
    "https://objectnet.dev/download.html (objectnet-1.0.zip)",
    "ROOT/objectnet-1.0/images/<folder>/*.png and ROOT/objectnet-1.0/mappings/{" + ", ".join(OBJECTNET_MAPPINGS) + "}"
    " (or ROOT = objectnet-1.0)",
    "one OOD set of the 113 classes that overlap ImageNet, each scored by the highest logit of its ImageNet classes",
    113,
    False,
)


def _dataset_dir(root: Path, info: SuiteInfo, names: Sequence[str], markers: Sequence[str], what: str) -> Path:
    """ROOT itself when it holds one of `markers` (class or split folders), else the first ROOT/<name> that does."""
    candidates = [root, *(root / name for name in names)]
    for folder in candidates:
        if any((folder / marker).is_dir() for marker in markers):
            return folder
    raise missing_data(info, f"{what} not found (looked in {', '.join(map(str, candidates))})")


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _scan(
    folder: Path, name: str, class_dirs: Sequence[str], classes: Sequence[str]
) -> tuple[LabeledImages, list[str]]:
    """The images in folder/<class_dirs[i]>/, labelled i (class `classes[i]`), as a SampleTable (ImageNet's training
    set is 1.28 M files); and the class folders that are absent."""
    paths: list[str] = []
    labels: list[int] = []
    absent: list[str] = []
    for label, sub in enumerate(class_dirs):
        try:
            files = sorted(e.name for e in os.scandir(folder / sub) if _is_image(e.name) and e.is_file())
        except FileNotFoundError:
            absent.append(sub)
            continue
        paths += [f"{sub}/{file}" for file in files]
        labels += [label] * len(files)
    groups = np.full(len(paths), -1, dtype=np.int32)
    table = SampleTable.from_columns(str(folder), paths, np.asarray(labels, dtype=np.int64), groups, [])
    return LabeledImages(name, list(classes), table), absent


def _partial(data: LabeledImages, absent: list[str], n_folders: int) -> list[str]:
    """What a partial copy of one set lacks: class folders, then images against the published count."""
    notes = [f"{data.name}: {len(absent)} of {n_folders} class folders missing (first: {absent[0]})"] if absent else []
    return notes + missing_counts({data.name: IMAGES[data.name]}, {data.name: len(data.samples)})


def _evaluation_only(data: LabeledImages, notes: list[str], logit_pool: dict[str, list[str]] | None) -> SuiteData:
    return SuiteData(
        train=None,
        val=None,
        eval_sets=[SuiteSet(data, "ood", logit_pool)],
        classnames=dict(CLASSNAMES),
        notes=notes,
    )


def _imagenet_dir(root: Path) -> Path:
    return _dataset_dir(root, IMAGENET, ("imagenet",), ("train", "val", "val_in_folder"), "the folders train/ and val/")


def read_imagenet(root: Path, variant: str | None) -> SuiteData:
    """For training: train/ (required) and val/."""
    data = read_imagenet_val(root, variant)
    train_dir = require(_imagenet_dir(root) / "train", "the training split train/", IMAGENET)
    train, absent_train = _scan(train_dir, "imagenet-train", WNIDS, WNIDS)
    data.train = train
    data.notes += _partial(train, absent_train, len(WNIDS))
    return data


def read_imagenet_val(root: Path, variant: str | None) -> SuiteData:
    """For evaluation: val/ alone (train/ is not listed)."""
    base = _imagenet_dir(root)
    val_dir = next((base / s for s in ("val_in_folder", "val") if (base / s).is_dir()), base / "val")
    require(val_dir, "the ID test split val/", IMAGENET)
    val, absent_val = _scan(val_dir, "imagenet-val", WNIDS, WNIDS)
    if not val.samples:
        flat = any(_is_image(name) for name in os.listdir(val_dir))
        hint = (
            " (its images lie flat, as ILSVRC2012_img_val.tar unpacks: sort them into <wnid>/ folders)" if flat else ""
        )
        raise MissingSuiteData(
            f"{IMAGENET.title}: no images in the wnid folders of {val_dir}{hint}; expected layout: {IMAGENET.layout}"
        )
    notes = _partial(val, absent_val, len(WNIDS))
    return SuiteData(train=None, val=None, eval_sets=[SuiteSet(val, "id")], classnames=dict(CLASSNAMES), notes=notes)


def read_imagenet_v2(root: Path, variant: str | None) -> SuiteData:
    indices = [str(i) for i in range(len(WNIDS))]
    names = ("imagenetv2-matched-frequency-format-val", "ImageNetV2-matched-frequency")
    folder = _dataset_dir(root, IMAGENET_V2, names, indices, "the folder imagenetv2-matched-frequency-format-val/")
    data, absent = _scan(folder, "imagenet-v2", indices, WNIDS)
    return _evaluation_only(data, _partial(data, absent, len(indices)), None)


def read_imagenet_sketch(root: Path, variant: str | None) -> SuiteData:
    folder = _dataset_dir(root, IMAGENET_SKETCH, ("sketch",), WNIDS, "the folder sketch/ (1000 wnid folders)")
    data, absent = _scan(folder, "imagenet-sketch", WNIDS, WNIDS)
    return _evaluation_only(data, _partial(data, absent, len(WNIDS)), None)


def _read_200(root: Path, info: SuiteInfo, indices: Sequence[int]) -> SuiteData:
    """ImageNet-R or -A: 200 wnid folders, scored on those 200 logits of the 1000-class model."""
    wnids = [WNIDS[i] for i in indices]
    folder = _dataset_dir(root, info, (info.name,), wnids, f"the folder {info.name}/ (200 wnid folders)")
    data, absent = _scan(folder, info.name, wnids, wnids)
    return _evaluation_only(data, _partial(data, absent, len(wnids)), {w: [w] for w in wnids})


def read_imagenet_r(root: Path, variant: str | None) -> SuiteData:
    return _read_200(root, IMAGENET_R, IMAGENET_R_INDICES)


def read_imagenet_a(root: Path, variant: str | None) -> SuiteData:
    return _read_200(root, IMAGENET_A, IMAGENET_A_INDICES)


def _json(path: Path) -> dict:
    require(path, f"the mapping file mappings/{path.name}", OBJECTNET)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: expected a JSON object, as ObjectNet ships it")
    return loaded


def _index_by_name(mappings: Path) -> dict[str, int]:
    """ImageNet class name, as imagenet_to_label_2012_v2 spells it (line i: 2012 id i) -> class index (sorted wnids),
    through pytorch_to_imagenet_2012_id.json (class index -> 2012 id)."""
    names = require(mappings / OBJECTNET_MAPPINGS[2], f"the mapping file mappings/{OBJECTNET_MAPPINGS[2]}", OBJECTNET)
    ids = _json(mappings / OBJECTNET_MAPPINGS[3])
    try:
        index_of_id = {int(v): int(k) for k, v in ids.items()}
    except (TypeError, ValueError):
        raise DataError(f"{mappings / OBJECTNET_MAPPINGS[3]}: expected class index -> 2012 id integers") from None
    if sorted(index_of_id.values()) != list(range(len(WNIDS))):
        raise DataError(f"{mappings / OBJECTNET_MAPPINGS[3]}: expected each of the 1000 class indices once")
    lines = names.read_text(encoding="utf-8").splitlines()
    return {line.strip(): index_of_id[i] for i, line in enumerate(lines) if i in index_of_id}


def objectnet_pools(mappings: Path) -> dict[str, list[str]]:
    """ObjectNet's classes that overlap ImageNet, by image folder (sorted: WiSE-FT's label order) -> their ImageNet
    wnids, read as WiSE-FT reads ObjectNet's mappings/ (objectnet_to_imagenet_1k.json: 'analog clock; digital
    clock')."""
    label_to_folder = {label: folder for folder, label in _json(mappings / OBJECTNET_MAPPINGS[0]).items()}
    source = mappings / OBJECTNET_MAPPINGS[1]
    to_imagenet = _json(source)
    index_of_name = _index_by_name(mappings)
    pools: dict[str, list[str]] = {}
    for label, names in to_imagenet.items():
        if label not in label_to_folder:
            raise DataError(f"{source}: class {label!r} has no image folder in {OBJECTNET_MAPPINGS[0]}")
        parts = [name.strip() for name in str(names).split(";")]
        unknown = [name for name in parts if name not in index_of_name]
        if unknown:
            raise DataError(f"{source}: {label!r} maps to {unknown[0]!r}, not in {OBJECTNET_MAPPINGS[2]}")
        pools[label_to_folder[label]] = [WNIDS[index_of_name[name]] for name in parts]
    return dict(sorted(pools.items()))


def read_objectnet(root: Path, variant: str | None) -> SuiteData:
    base = _dataset_dir(root, OBJECTNET, ("objectnet-1.0",), ("images", "mappings"), "the folder objectnet-1.0/")
    pools = objectnet_pools(require(base / "mappings", "the folder mappings/", OBJECTNET))
    folders = list(pools)
    data, absent = _scan(require(base / "images", "the folder images/", OBJECTNET), "objectnet", folders, folders)
    return _evaluation_only(data, _partial(data, absent, len(folders)), pools)


SUITES = [
    Suite(IMAGENET, read_imagenet, read_for_eval=read_imagenet_val),
    Suite(IMAGENET_V2, read_imagenet_v2),
    Suite(IMAGENET_SKETCH, read_imagenet_sketch),
    Suite(IMAGENET_R, read_imagenet_r),
    Suite(IMAGENET_A, read_imagenet_a),
    Suite(OBJECTNET, read_objectnet),
]

# ImageNet-1k's 1000 wnids, sorted (= class index 0..999): the list timm ships (imagenet_synsets.txt), checked against
# Hendrycks et al.'s all_wnids and LOC_synset_mapping.txt; known without a copy of ImageNet for evaluation-only suites.
_WNIDS_TEXT = """
n01440764 n01443537 n01484850 n01491361 n01494475 n01496331 n01498041 n01514668 n01514859 n01518878 n01530575
n01531178 n01532829 n01534433 n01537544 n01558993 n01560419 n01580077 n01582220 n01592084 n01601694 n01608432
n01614925 n01616318 n01622779 n01629819 n01630670 n01631663 n01632458 n01632777 n01641577 n01644373 n01644900
n01664065 n01665541 n01667114 n01667778 n01669191 n01675722 n01677366 n01682714 n01685808 n01687978 n01688243
n01689811 n01692333 n01693334 n01694178 n01695060 n01697457 n01698640 n01704323 n01728572 n01728920 n01729322
n01729977 n01734418 n01735189 n01737021 n01739381 n01740131 n01742172 n01744401 n01748264 n01749939 n01751748
n01753488 n01755581 n01756291 n01768244 n01770081 n01770393 n01773157 n01773549 n01773797 n01774384 n01774750
n01775062 n01776313 n01784675 n01795545 n01796340 n01797886 n01798484 n01806143 n01806567 n01807496 n01817953
n01818515 n01819313 n01820546 n01824575 n01828970 n01829413 n01833805 n01843065 n01843383 n01847000 n01855032
n01855672 n01860187 n01871265 n01872401 n01873310 n01877812 n01882714 n01883070 n01910747 n01914609 n01917289
n01924916 n01930112 n01943899 n01944390 n01945685 n01950731 n01955084 n01968897 n01978287 n01978455 n01980166
n01981276 n01983481 n01984695 n01985128 n01986214 n01990800 n02002556 n02002724 n02006656 n02007558 n02009229
n02009912 n02011460 n02012849 n02013706 n02017213 n02018207 n02018795 n02025239 n02027492 n02028035 n02033041
n02037110 n02051845 n02056570 n02058221 n02066245 n02071294 n02074367 n02077923 n02085620 n02085782 n02085936
n02086079 n02086240 n02086646 n02086910 n02087046 n02087394 n02088094 n02088238 n02088364 n02088466 n02088632
n02089078 n02089867 n02089973 n02090379 n02090622 n02090721 n02091032 n02091134 n02091244 n02091467 n02091635
n02091831 n02092002 n02092339 n02093256 n02093428 n02093647 n02093754 n02093859 n02093991 n02094114 n02094258
n02094433 n02095314 n02095570 n02095889 n02096051 n02096177 n02096294 n02096437 n02096585 n02097047 n02097130
n02097209 n02097298 n02097474 n02097658 n02098105 n02098286 n02098413 n02099267 n02099429 n02099601 n02099712
n02099849 n02100236 n02100583 n02100735 n02100877 n02101006 n02101388 n02101556 n02102040 n02102177 n02102318
n02102480 n02102973 n02104029 n02104365 n02105056 n02105162 n02105251 n02105412 n02105505 n02105641 n02105855
n02106030 n02106166 n02106382 n02106550 n02106662 n02107142 n02107312 n02107574 n02107683 n02107908 n02108000
n02108089 n02108422 n02108551 n02108915 n02109047 n02109525 n02109961 n02110063 n02110185 n02110341 n02110627
n02110806 n02110958 n02111129 n02111277 n02111500 n02111889 n02112018 n02112137 n02112350 n02112706 n02113023
n02113186 n02113624 n02113712 n02113799 n02113978 n02114367 n02114548 n02114712 n02114855 n02115641 n02115913
n02116738 n02117135 n02119022 n02119789 n02120079 n02120505 n02123045 n02123159 n02123394 n02123597 n02124075
n02125311 n02127052 n02128385 n02128757 n02128925 n02129165 n02129604 n02130308 n02132136 n02133161 n02134084
n02134418 n02137549 n02138441 n02165105 n02165456 n02167151 n02168699 n02169497 n02172182 n02174001 n02177972
n02190166 n02206856 n02219486 n02226429 n02229544 n02231487 n02233338 n02236044 n02256656 n02259212 n02264363
n02268443 n02268853 n02276258 n02277742 n02279972 n02280649 n02281406 n02281787 n02317335 n02319095 n02321529
n02325366 n02326432 n02328150 n02342885 n02346627 n02356798 n02361337 n02363005 n02364673 n02389026 n02391049
n02395406 n02396427 n02397096 n02398521 n02403003 n02408429 n02410509 n02412080 n02415577 n02417914 n02422106
n02422699 n02423022 n02437312 n02437616 n02441942 n02442845 n02443114 n02443484 n02444819 n02445715 n02447366
n02454379 n02457408 n02480495 n02480855 n02481823 n02483362 n02483708 n02484975 n02486261 n02486410 n02487347
n02488291 n02488702 n02489166 n02490219 n02492035 n02492660 n02493509 n02493793 n02494079 n02497673 n02500267
n02504013 n02504458 n02509815 n02510455 n02514041 n02526121 n02536864 n02606052 n02607072 n02640242 n02641379
n02643566 n02655020 n02666196 n02667093 n02669723 n02672831 n02676566 n02687172 n02690373 n02692877 n02699494
n02701002 n02704792 n02708093 n02727426 n02730930 n02747177 n02749479 n02769748 n02776631 n02777292 n02782093
n02783161 n02786058 n02787622 n02788148 n02790996 n02791124 n02791270 n02793495 n02794156 n02795169 n02797295
n02799071 n02802426 n02804414 n02804610 n02807133 n02808304 n02808440 n02814533 n02814860 n02815834 n02817516
n02823428 n02823750 n02825657 n02834397 n02835271 n02837789 n02840245 n02841315 n02843684 n02859443 n02860847
n02865351 n02869837 n02870880 n02871525 n02877765 n02879718 n02883205 n02892201 n02892767 n02894605 n02895154
n02906734 n02909870 n02910353 n02916936 n02917067 n02927161 n02930766 n02939185 n02948072 n02950826 n02951358
n02951585 n02963159 n02965783 n02966193 n02966687 n02971356 n02974003 n02977058 n02978881 n02979186 n02980441
n02981792 n02988304 n02992211 n02992529 n02999410 n03000134 n03000247 n03000684 n03014705 n03016953 n03017168
n03018349 n03026506 n03028079 n03032252 n03041632 n03042490 n03045698 n03047690 n03062245 n03063599 n03063689
n03065424 n03075370 n03085013 n03089624 n03095699 n03100240 n03109150 n03110669 n03124043 n03124170 n03125729
n03126707 n03127747 n03127925 n03131574 n03133878 n03134739 n03141823 n03146219 n03160309 n03179701 n03180011
n03187595 n03188531 n03196217 n03197337 n03201208 n03207743 n03207941 n03208938 n03216828 n03218198 n03220513
n03223299 n03240683 n03249569 n03250847 n03255030 n03259280 n03271574 n03272010 n03272562 n03290653 n03291819
n03297495 n03314780 n03325584 n03337140 n03344393 n03345487 n03347037 n03355925 n03372029 n03376595 n03379051
n03384352 n03388043 n03388183 n03388549 n03393912 n03394916 n03400231 n03404251 n03417042 n03424325 n03425413
n03443371 n03444034 n03445777 n03445924 n03447447 n03447721 n03450230 n03452741 n03457902 n03459775 n03461385
n03467068 n03476684 n03476991 n03478589 n03481172 n03482405 n03483316 n03485407 n03485794 n03492542 n03494278
n03495258 n03496892 n03498962 n03527444 n03529860 n03530642 n03532672 n03534580 n03535780 n03538406 n03544143
n03584254 n03584829 n03590841 n03594734 n03594945 n03595614 n03598930 n03599486 n03602883 n03617480 n03623198
n03627232 n03630383 n03633091 n03637318 n03642806 n03649909 n03657121 n03658185 n03661043 n03662601 n03666591
n03670208 n03673027 n03676483 n03680355 n03690938 n03691459 n03692522 n03697007 n03706229 n03709823 n03710193
n03710637 n03710721 n03717622 n03720891 n03721384 n03724870 n03729826 n03733131 n03733281 n03733805 n03742115
n03743016 n03759954 n03761084 n03763968 n03764736 n03769881 n03770439 n03770679 n03773504 n03775071 n03775546
n03776460 n03777568 n03777754 n03781244 n03782006 n03785016 n03786901 n03787032 n03788195 n03788365 n03791053
n03792782 n03792972 n03793489 n03794056 n03796401 n03803284 n03804744 n03814639 n03814906 n03825788 n03832673
n03837869 n03838899 n03840681 n03841143 n03843555 n03854065 n03857828 n03866082 n03868242 n03868863 n03871628
n03873416 n03874293 n03874599 n03876231 n03877472 n03877845 n03884397 n03887697 n03888257 n03888605 n03891251
n03891332 n03895866 n03899768 n03902125 n03903868 n03908618 n03908714 n03916031 n03920288 n03924679 n03929660
n03929855 n03930313 n03930630 n03933933 n03935335 n03937543 n03938244 n03942813 n03944341 n03947888 n03950228
n03954731 n03956157 n03958227 n03961711 n03967562 n03970156 n03976467 n03976657 n03977966 n03980874 n03982430
n03983396 n03991062 n03992509 n03995372 n03998194 n04004767 n04005630 n04008634 n04009552 n04019541 n04023962
n04026417 n04033901 n04033995 n04037443 n04039381 n04040759 n04041544 n04044716 n04049303 n04065272 n04067472
n04069434 n04070727 n04074963 n04081281 n04086273 n04090263 n04099969 n04111531 n04116512 n04118538 n04118776
n04120489 n04125021 n04127249 n04131690 n04133789 n04136333 n04141076 n04141327 n04141975 n04146614 n04147183
n04149813 n04152593 n04153751 n04154565 n04162706 n04179913 n04192698 n04200800 n04201297 n04204238 n04204347
n04208210 n04209133 n04209239 n04228054 n04229816 n04235860 n04238763 n04239074 n04243546 n04251144 n04252077
n04252225 n04254120 n04254680 n04254777 n04258138 n04259630 n04263257 n04264628 n04265275 n04266014 n04270147
n04273569 n04275548 n04277352 n04285008 n04286575 n04296562 n04310018 n04311004 n04311174 n04317175 n04325704
n04326547 n04328186 n04330267 n04332243 n04335435 n04336792 n04344873 n04346328 n04347754 n04350905 n04355338
n04355933 n04356056 n04357314 n04366367 n04367480 n04370456 n04371430 n04371774 n04372370 n04376876 n04380533
n04389033 n04392985 n04398044 n04399382 n04404412 n04409515 n04417672 n04418357 n04423845 n04428191 n04429376
n04435653 n04442312 n04443257 n04447861 n04456115 n04458633 n04461696 n04462240 n04465501 n04467665 n04476259
n04479046 n04482393 n04483307 n04485082 n04486054 n04487081 n04487394 n04493381 n04501370 n04505470 n04507155
n04509417 n04515003 n04517823 n04522168 n04523525 n04525038 n04525305 n04532106 n04532670 n04536866 n04540053
n04542943 n04548280 n04548362 n04550184 n04552348 n04553703 n04554684 n04557648 n04560804 n04562935 n04579145
n04579432 n04584207 n04589890 n04590129 n04591157 n04591713 n04592741 n04596742 n04597913 n04599235 n04604644
n04606251 n04612504 n04613696 n06359193 n06596364 n06785654 n06794110 n06874185 n07248320 n07565083 n07579787
n07583066 n07584110 n07590611 n07613480 n07614500 n07615774 n07684084 n07693725 n07695742 n07697313 n07697537
n07711569 n07714571 n07714990 n07715103 n07716358 n07716906 n07717410 n07717556 n07718472 n07718747 n07720875
n07730033 n07734744 n07742313 n07745940 n07747607 n07749582 n07753113 n07753275 n07753592 n07754684 n07760859
n07768694 n07802026 n07831146 n07836838 n07860988 n07871810 n07873807 n07875152 n07880968 n07892512 n07920052
n07930864 n07932039 n09193705 n09229709 n09246464 n09256479 n09288635 n09332890 n09399592 n09421951 n09428293
n09468604 n09472597 n09835506 n10148035 n10565667 n11879895 n11939491 n12057211 n12144580 n12267677 n12620546
n12768682 n12985857 n12998815 n13037406 n13040303 n13044778 n13052670 n13054560 n13133613 n15075141
"""
WNIDS = tuple(_WNIDS_TEXT.split())
CLASSNAMES = dict(zip(WNIDS, IMAGENET_CLASSNAMES, strict=True))  # wnid -> OpenAI's CLIP class name, for the prompts
