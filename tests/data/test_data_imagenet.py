import os

import dataset_writers as w
import numpy as np
import pytest

from seethrough.data import build_dataset
from seethrough.data.imagenet import ImageNetDataset
from seethrough.data.imagenet_val import regroup_val


def _own_boxes(image_id):
    label = w.VAL_OBJECTS[image_id][0][0]
    if image_id in w.VAL_XML_BOXES:
        return np.array([w.VAL_XML_BOXES[image_id]], np.float32)
    return np.array([b for s, b in w.VAL_OBJECTS[image_id] if s == label], np.float32)


def test_train(imagenet_root):
    ds = ImageNetDataset(imagenet_root, split="train")
    assert ds.classes == w.SYNSETS and len(ds) == 9
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    raw = ds.load(4)
    assert raw.sample_id == "n01443537_1" and raw.label == 1
    # train XML exists for this image: only its own synset's box, not the n01440764 one
    np.testing.assert_array_equal(raw.boxes, np.array([w.TRAIN_XML[2]], np.float32))
    assert ds.load(0).boxes.shape == (0, 4)  # no XML, no CSV for train


def test_first_n_synsets(imagenet_root):
    train = build_dataset(f"imagenet:{imagenet_root}", "train", num_classes=2)
    val = build_dataset(f"imagenet:{imagenet_root}", "val", num_classes=2)
    assert train.classes == val.classes == w.SYNSETS[:2]
    assert len(train) == 6 and set(train.labels.tolist()) == {0, 1}
    expected = [i for i, objs in w.VAL_OBJECTS.items() if objs[0][0] in w.SYNSETS[:2]]
    assert [val.load(i).sample_id for i in range(len(val))] == expected


def test_flat_val_labels_and_boxes(imagenet_root):
    ds = ImageNetDataset(imagenet_root, split="val")
    assert len(ds) == len(w.VAL_OBJECTS)  # the CSV row without an image is not a sample
    for i, (image_id, objects) in enumerate(w.VAL_OBJECTS.items()):
        raw = ds.load(i)
        assert raw.sample_id == image_id
        assert raw.label == w.SYNSETS.index(objects[0][0])
        np.testing.assert_array_equal(raw.boxes, _own_boxes(image_id))
        assert raw.image.size == (w.WIDTH, w.HEIGHT)
    # image 2 has a foreign object in the CSV, image 4 a second object of its own synset
    assert len(ds.load(1).boxes) == 1 and len(ds.load(3).boxes) == 2


def test_annotations_option(imagenet_root, tmp_path):
    other = tmp_path / "xml"
    other.mkdir()
    (other / "ILSVRC2012_val_00000003.xml").write_text(w.voc_xml([(w.SYNSETS[2], (5, 6, 7, 8))]))
    ds = ImageNetDataset(imagenet_root, split="val", annotations=other)
    np.testing.assert_array_equal(ds.load(2).boxes, [[5, 6, 7, 8]])
    np.testing.assert_array_equal(ds.load(0).boxes, [w.VAL_OBJECTS["ILSVRC2012_val_00000001"][0][1]])


def test_flat_val_needs_the_csv(imagenet_root):
    (imagenet_root / "LOC_val_solution.csv").unlink()
    ImageNetDataset(imagenet_root, split="train")
    with pytest.raises(FileNotFoundError, match="LOC_val_solution.csv: file not found"):
        ImageNetDataset(imagenet_root, split="val")


def test_unknown_synset_in_csv(imagenet_root):
    path = imagenet_root / "LOC_val_solution.csv"
    image_id = "ILSVRC2012_val_00000005"
    path.write_text(path.read_text().replace(f"{image_id},n01443537", f"{image_id},n09999999"))
    with pytest.raises(ValueError, match=r"LOC_val_solution.csv: synsets \['n09999999'\]"):
        ImageNetDataset(imagenet_root, split="val")


@pytest.mark.parametrize("row", ["x,n01440764 1 2 3", "x,n01440764 1 2 3 y", "../x,n01440764 1 2 3 4"])
def test_malformed_csv(imagenet_root, row):
    path = imagenet_root / "LOC_val_solution.csv"
    path.write_text(path.read_text() + row + "\n")
    with pytest.raises(ValueError, match="LOC_val_solution.csv, line 9"):
        ImageNetDataset(imagenet_root, split="val")


def test_bad_xml_is_named(imagenet_root):
    (imagenet_root / "Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.xml").write_text("<annotation>")
    ds = ImageNetDataset(imagenet_root, split="val")
    with pytest.raises(ValueError, match="ILSVRC2012_val_00000001.xml"):
        ds.load(0)


def _snapshot(folder):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("method", ["symlink", "hardlink", "copy"])
def test_regroup_val(imagenet_root, tmp_path, method):
    val = imagenet_root / "val"
    before = _snapshot(val)
    out = tmp_path / "val_by_synset"
    csv = imagenet_root / "LOC_val_solution.csv"

    dry = regroup_val(imagenet_root, csv, out, method=method, dry_run=True)
    assert dry["linked"] == 6 and dry["dry_run"] and not out.exists()

    first = regroup_val(imagenet_root, csv, out, method=method)
    assert (first["linked"], first["already_present"], first["missing_source"]) == (6, 0, 1)
    assert first["synsets"] == 3 and first["conflicts"] == 0
    for image_id, objects in w.VAL_OBJECTS.items():
        placed = out / objects[0][0] / f"{image_id}.JPEG"
        assert placed.read_bytes() == (val / f"{image_id}.JPEG").read_bytes()
        assert placed.is_symlink() == (method == "symlink")
    if method == "symlink":
        assert not os.path.isabs(os.readlink(out / w.SYNSETS[0] / "ILSVRC2012_val_00000001.JPEG"))

    second = regroup_val(val, csv, out, method=method)
    assert (second["linked"], second["already_present"]) == (0, 6)
    assert second["summary"].startswith("nothing to do")
    assert _snapshot(val) == before  # originals untouched (content and mtime)

    grouped = ImageNetDataset(imagenet_root, split="val", val_dir=out)
    flat = ImageNetDataset(imagenet_root, split="val")
    by_id = {flat.load(i).sample_id: flat.load(i) for i in range(len(flat))}
    assert len(grouped) == len(flat)
    for i in range(len(grouped)):
        raw = grouped.load(i)
        assert raw.label == by_id[raw.sample_id].label
        np.testing.assert_array_equal(raw.boxes, by_id[raw.sample_id].boxes)


def test_regroup_val_conflict_and_bad_method(imagenet_root, tmp_path):
    csv = imagenet_root / "LOC_val_solution.csv"
    out = tmp_path / "out"
    (out / w.SYNSETS[0]).mkdir(parents=True)
    (out / w.SYNSETS[0] / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"something else")
    report = regroup_val(imagenet_root, csv, out)
    assert report["conflicts"] == 1 and report["linked"] == 5
    assert (out / w.SYNSETS[0] / "ILSVRC2012_val_00000001.JPEG").read_bytes() == b"something else"
    with pytest.raises(ValueError, match="method"):
        regroup_val(imagenet_root, csv, out, method="move")
    with pytest.raises(ValueError, match="out_dir must differ"):
        regroup_val(imagenet_root, csv, imagenet_root / "val")
