"""Write tiny datasets in each real on-disk format (used by conftest.py and the tests).

Every image is WIDTH×HEIGHT (non-square, so resize and flip bugs show): a BACKGROUND
colour with the object drawn in OBJECT colour exactly over its ground-truth box or mask,
so alignment can be checked pixel by pixel after the transforms.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from seethrough.data.mnist import write_idx

WIDTH, HEIGHT = 24, 20
OBJECT = (255, 0, 0)
BACKGROUND = (0, 0, 255)
#: JPEG settings that keep flat colours close (4:4:4, no chroma subsampling).
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}
IDX_UBYTE = 0x08
#: Real MNIST digits in the IDX fixture: the first MNIST_TRAIN → train, the rest → t10k.
MNIST_TRAIN, MNIST_VAL = 40, 12


# ---------------------------------------------------------------- images
def scene(box: tuple[int, int, int, int]) -> Image.Image:
    """BACKGROUND image with an OBJECT rectangle covering pixels x0 ≤ x < x1, y0 ≤ y < y1."""
    pixels = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:] = BACKGROUND
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = OBJECT
    return Image.fromarray(pixels)


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = JPEG_OPTIONS if path.suffix.lower() in (".jpg", ".jpeg") else {}
    image.save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None, **options)
    return path


def left_box(i: int) -> tuple[int, int, int, int]:
    """An object box in the left half (so a horizontal flip moves it), varying with ``i``."""
    x0, y0 = 1 + i % 3, 2 + i % 4
    return (x0, y0, x0 + 8, y0 + 9)


# ---------------------------------------------------------------- IDX (MNIST)
def make_mnist(root: Path, images: np.ndarray, labels: np.ndarray, *, n_train: int, gz: bool) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(root / f"train-images-idx3-ubyte{ext}", images[:n_train])
    write_idx(root / f"train-labels-idx1-ubyte{ext}", labels[:n_train])
    write_idx(root / f"t10k-images-idx3-ubyte{ext}", images[n_train:])
    write_idx(root / f"t10k-labels-idx1-ubyte{ext}", labels[n_train:])
    return root


# ---------------------------------------------------------------- ImageFolder
FOLDER_CLASSES = ["cat", "dog", "zebra"]


def make_folder(root: Path, per_class: int = 3) -> dict:
    """train/<class>/ and val/<class>/ with mixed-case extensions and a nested folder."""
    layout: dict[str, list[str]] = {"train": [], "val": []}
    for split, count in (("train", per_class), ("val", 2)):
        for c, name in enumerate(FOLDER_CLASSES):
            for i in range(count):
                ext = [".jpg", ".PNG", ".Jpeg"][i % 3]
                sub = "nested/" if i == 2 else ""
                rel = f"{split}/{name}/{sub}{name}_{i}{ext}"
                save(scene(left_box(i)), root / rel)
                layout[split].append(rel)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "cat" / ".hidden.jpg").write_bytes(b"macOS debris")
    return layout


# ---------------------------------------------------------------- CUB-200-2011
CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
CUB_PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg",
             "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat"]


@dataclass
class CubImage:
    image_id: int
    class_id: int
    is_training: int
    path: str
    box: tuple[int, int, int, int]  # xyxy
    parts: np.ndarray = field(default_factory=lambda: np.zeros((len(CUB_PARTS), 3), np.float32))


def make_cub(root: Path, per_class: int = 4) -> list[CubImage]:
    """A CUB_200_2011 folder; images.txt in an order that differs from the id order."""
    images: list[CubImage] = []
    for c, name in enumerate(CUB_CLASSES, 1):
        for i in range(per_class):
            image_id = len(images) + 1
            record = CubImage(image_id, c, int(i % 2 == 0), f"{name}/{name[4:]}_{i:04d}_{image_id}.jpg",
                              left_box(image_id))
            x0, y0, x1, y1 = record.box
            for p in range(0, len(CUB_PARTS), 2):  # every other part visible, inside the box
                record.parts[p] = (x0 + p % (x1 - x0), y0 + p % (y1 - y0), 1)
            save(scene(record.box), root / "images" / record.path)
            images.append(record)
    order = images[::-1]
    lines = {
        "images.txt": [f"{r.image_id} {r.path}" for r in order],
        "image_class_labels.txt": [f"{r.image_id} {r.class_id}" for r in images],
        "train_test_split.txt": [f"{r.image_id} {r.is_training}" for r in images],
        "classes.txt": [f"{c} {name}" for c, name in enumerate(CUB_CLASSES, 1)],
        "bounding_boxes.txt": [
            f"{r.image_id} {r.box[0]:.1f} {r.box[1]:.1f} {r.box[2] - r.box[0]:.1f} {r.box[3] - r.box[1]:.1f}"
            for r in images
        ],
        "parts/parts.txt": [f"{p} {name}" for p, name in enumerate(CUB_PARTS, 1)],
        "parts/part_locs.txt": [
            f"{r.image_id} {p} {x:.1f} {y:.1f} {int(v)}"
            for r in images for p, (x, y, v) in enumerate(r.parts, 1)
        ],
    }
    for name, rows in lines.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(rows) + "\n")
    return order


# ---------------------------------------------------------------- ImageNet CLS-LOC
SYNSETS = ["n01440764", "n01443537", "n01484850"]
#: val ImageId → [(synset, box)], first object = the label; one image has a foreign object.
VAL_OBJECTS = {
    f"ILSVRC2012_val_0000000{i + 1}": [(SYNSETS[i % 3], left_box(i))] for i in range(6)
}
VAL_OBJECTS["ILSVRC2012_val_00000002"].append((SYNSETS[2], (14, 2, 22, 10)))
VAL_OBJECTS["ILSVRC2012_val_00000004"].append((SYNSETS[0], (13, 10, 20, 18)))
#: Val images whose VOC XML gives a different box than the CSV (the XML wins).
VAL_XML_BOXES = {"ILSVRC2012_val_00000001": (2, 3, 11, 13)}
#: A CSV row with no image file.
MISSING_VAL = "ILSVRC2012_val_00000099"
TRAIN_XML = ("n01443537", "n01443537_1", (3, 4, 12, 15))


def voc_xml(objects: list[tuple[str, tuple[int, int, int, int]]]) -> str:
    body = "".join(
        f"<object><name>{s}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for s, b in objects
    )
    return f"<annotation><size><width>{WIDTH}</width><height>{HEIGHT}</height></size>{body}</annotation>"


def make_imagenet(root: Path, per_synset: int = 3) -> Path:
    for s, synset in enumerate(SYNSETS):
        for i in range(per_synset):
            save(scene(left_box(i)), root / "train" / synset / f"{synset}_{i}.JPEG")
    synset, image_id, box = TRAIN_XML
    xml = root / "Annotations/CLS-LOC/train" / synset / f"{image_id}.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    xml.write_text(voc_xml([(synset, box), (SYNSETS[0], (0, 0, 5, 5))]))
    rows = ["ImageId,PredictionString"]
    for image_id, objects in VAL_OBJECTS.items():
        save(scene(objects[0][1]), root / "val" / f"{image_id}.JPEG")
        rows.append(f"{image_id}," + " ".join(f"{s} {' '.join(map(str, b))}" for s, b in objects) + " ")
    rows.append(f"{MISSING_VAL},{SYNSETS[1]} 1 1 5 5")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    for image_id, box in VAL_XML_BOXES.items():
        xml = root / "Annotations/CLS-LOC/val" / f"{image_id}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        label = VAL_OBJECTS[image_id][0][0]
        xml.write_text(voc_xml([(label, box), (SYNSETS[2], (0, 0, 4, 4))]))
    return root


# ---------------------------------------------------------------- Con-Text
#: Upper- and lower-case categories and multi-digit ids, so the file order matters.
CONTEXT_FILES = [f"{cat}_{i}.jpg" for cat in ("Bakery", "Pharmacy", "barber", "Theatre") for i in range(1, 7)]


def make_context(root: Path) -> Path:
    folder = root / "JPEGImages"
    for i, name in enumerate(CONTEXT_FILES):
        save(scene(left_box(i)), folder / name)
    return folder


# ---------------------------------------------------------------- Oxford-IIIT Pet
#: (breed, CLASS-ID, SPECIES, BREED-ID) as in list.txt.
PET_BREEDS = [("Abyssinian", 1, 1, 1), ("american_bulldog", 2, 2, 1), ("Bengal", 3, 1, 2)]
PET_HEADER = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids", "#SPECIES: 1:Cat 2:Dog"]
PET_WITHOUT_TRIMAP = "Bengal_4"
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3


def pet_trimap(i: int) -> np.ndarray:
    """Pet core (1) inside a one-pixel border ring (3) on background (2)."""
    x0, y0, x1, y1 = left_box(i)
    trimap = np.full((HEIGHT, WIDTH), TRIMAP_BACKGROUND, np.uint8)
    trimap[y0:y1, x0:x1] = TRIMAP_BORDER
    trimap[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = TRIMAP_PET
    return trimap


def make_pets(root: Path, per_breed: int = 4) -> dict[str, int]:
    """Returns image name → index i used for its box/trimap."""
    rows: dict[str, list[str]] = {"trainval": [], "test": []}
    index: dict[str, int] = {}
    for breed, class_id, species, breed_id in PET_BREEDS:
        for n in range(1, per_breed + 1):
            name, i = f"{breed}_{n}", len(index)
            index[name] = i
            save(scene(left_box(i)), root / "images" / f"{name}.jpg")
            if name != PET_WITHOUT_TRIMAP:
                save(Image.fromarray(pet_trimap(i)), root / "annotations/trimaps" / f"{name}.png")
            split = "trainval" if n <= per_breed // 2 else "test"
            rows[split].append(f"{name} {class_id} {species} {breed_id}")
    annotations = root / "annotations"
    (annotations / "list.txt").write_text("\n".join(PET_HEADER + rows["trainval"] + rows["test"]) + "\n")
    for split, lines in rows.items():
        (annotations / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return index


# ---------------------------------------------------------------- checks
def bbox_of(mask: np.ndarray) -> np.ndarray:
    """Tight xyxy (pixel edges) of a bool H×W mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def erode(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbours are all in ``mask`` (away from blended resize edges)."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    return inner
