"""Image folders and CSVs: layouts, splits, bad files named or skipped and listed, streaming."""

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data import load_dataset
from cnnkit.data import folders

def png_header_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width × height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def make_folder(root: Path, classes=("cat", "dog", "fox"), per_class=10, size=(12, 10), mode="RGB", suffix=".png"):
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            array[..., 0] = 20 * k  # the class shows in the red channel
            Image.fromarray(array).convert(mode).save(root / name / f"{i:03d}{suffix}")
    return root


def test_image_folder_is_read_split_and_stratified(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=20)
    (root / "cat" / "notes.txt").write_text("ignored: not an image suffix")
    (root / "dog" / ".hidden.png").write_text("ignored: hidden")
    data = load_dataset(str(root), seed=0)
    assert data.name == "pets" and data.classes == ["cat", "dog", "fox"]
    assert (len(data.train), len(data.val), len(data.test)) == (42, 9, 9)
    assert data.in_channels == 3 and data.image_size == (12, 10) and data.train.in_memory
    assert data.test.class_counts(3).tolist() == [3, 3, 3] and data.skipped == []
    x, y = data.train.batch(torch.arange(len(data.train)))
    torch.testing.assert_close(x[:, 0, 0, 0], y.float() * 20 / 255)  # labels follow the folders
    other = load_dataset(root, seed=1)
    assert not torch.equal(other.test.images, data.test.images)
    assert torch.equal(load_dataset(root, seed=0).test.images, data.test.images)


def test_exact_pixels_and_resizing(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=4)
    data = load_dataset(root)
    everything = torch.cat([data.train.images, data.val.images, data.test.images])
    originals = {np.asarray(Image.open(p)).tobytes() for p in sorted(root.rglob("*.png"))}
    assert {image.permute(1, 2, 0).numpy().tobytes() for image in everything} == originals
    assert load_dataset(root, image_size=8).train.images.shape[1:] == (3, 8, 8)


def test_gray_folder_stays_one_channel_and_mixed_modes_become_rgb(tmp_path):
    root = make_folder(tmp_path / "gray", mode="L", per_class=4)
    assert load_dataset(root).in_channels == 1
    Image.new("P", (12, 10)).save(root / "cat" / "palette.png")
    Image.new("RGBA", (30, 30), (255, 0, 0, 128)).save(root / "dog" / "alpha.png")
    Image.fromarray(np.full((10, 12), 40000, np.uint16)).save(root / "fox" / "deep.png")
    data = load_dataset(root, seed=0)
    assert data.in_channels == 3 and data.image_size == (12, 10)  # first file (cat/000.png) sets the size
    x, _ = data.train.batch(torch.arange(len(data.train)))
    assert 0 <= x.min() and x.max() <= 1


def test_pre_split_folders_are_kept_and_missing_val_is_carved(tmp_path):
    make_folder(tmp_path / "data" / "train", per_class=20)
    make_folder(tmp_path / "data" / "test", per_class=5)
    data = load_dataset(tmp_path / "data")
    assert (len(data.train), len(data.val), len(data.test)) == (54, 6, 15)
    make_folder(tmp_path / "data" / "val", per_class=3)
    data = load_dataset(tmp_path / "data")
    assert (len(data.train), len(data.val), len(data.test)) == (60, 9, 15)


def bad_files(root: Path) -> dict[str, Path]:
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    bad = {
        "truncated": root / "cat" / "truncated.jpg",
        "text": root / "dog" / "text.jpg",
        "eps": root / "dog" / "drawing.png",
        "bomb": root / "fox" / "bomb.png",
    }
    bad["truncated"].write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    bad["text"].write_text("just text, named .jpg")
    bad["eps"].write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    bad["bomb"].write_bytes(png_header_claiming(30000, 30000))
    return bad


@pytest.mark.parametrize("kind,message", [
    ("truncated", "corrupt or truncated"),
    ("text", "not an image"),
    ("eps", "not an image"),
    ("bomb", "exceeds the limit"),
])
def test_a_bad_file_is_named(tmp_path, kind, message):
    root = make_folder(tmp_path / "pets", per_class=4)
    path = bad_files(root)[kind]
    for other in set(bad_files(root).values()) - {path}:
        other.unlink()
    with pytest.raises(ValueError, match=f"{message}.*skip_bad") as error:
        load_dataset(root)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("in_memory", [True, False])
def test_skip_bad_leaves_bad_files_out_and_lists_them(tmp_path, in_memory):
    root = make_folder(tmp_path / "pets", per_class=10)
    bad = bad_files(root)
    data = load_dataset(root, skip_bad=True, in_memory=in_memory)
    skipped = dict(data.skipped)
    expected = set(map(str, bad.values())) if in_memory else set(map(str, bad.values())) - {str(bad["truncated"])}
    assert set(skipped) == expected  # streamed sets check headers only: truncation shows when read
    assert "truncated" in skipped.get(str(bad["truncated"]), "truncated")
    assert len(data.train) + len(data.val) + len(data.test) == 30 + (0 if in_memory else 1)
    assert json.loads(json.dumps(data.to_dict()))["skipped"][0]["path"] in expected


def test_streamed_set_reads_files_resized_to_the_dataset_size(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=6, size=(16, 16))
    Image.new("L", (40, 20), 128).save(root / "cat" / "wide.png")
    data = load_dataset(root, in_memory=False, image_size=(8, 8), seed=0)
    assert not data.train.in_memory and data.train.images is None and len(data.train.files) == len(data.train)
    x, y = data.train.batch(torch.arange(len(data.train)))
    assert x.shape == (len(data.train), 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    image, label = data.train[0]
    assert image.shape == (3, 8, 8) and isinstance(label, int)
    loader = torch.utils.data.DataLoader(data.train, batch_size=4, num_workers=0)
    assert next(iter(loader))[0].shape == (4, 3, 8, 8)
    assert data.to_dict()["in_memory"] is False
    in_memory = load_dataset(root, in_memory=True, image_size=(8, 8), seed=0)
    torch.testing.assert_close(x, in_memory.train.batch(torch.arange(len(data.train)))[0], atol=1 / 255, rtol=0)


def test_large_datasets_stream_automatically(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pets", per_class=4)
    monkeypatch.setattr(folders, "MEMORY_LIMIT", 100)
    assert not load_dataset(root).train.in_memory


def test_csv_of_paths_and_labels(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=10)
    rows = ["path,label"] + [f"pets/{p.parent.name}/{p.name},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    csv = tmp_path / "list.csv"
    csv.write_text("\n".join(rows) + "\n\n")
    data = load_dataset(csv)
    assert data.name == "list" and data.classes == ["cat", "dog", "fox"] and len(data.test) == 6
    csv.write_text("pets/cat/000.png,10\npets/cat/001.png,2\npets/dog/000.png,2\n")
    assert load_dataset(csv).classes == ["2", "10"]  # numeric labels in numeric order


def test_csv_errors_name_file_and_line(tmp_path):
    make_folder(tmp_path / "pets", per_class=3)
    csv = tmp_path / "list.csv"
    csv.write_text("pets/cat/000.png,cat\npets/cat/001.png\n")
    with pytest.raises(ValueError, match=f"{csv}:2: expected two columns"):
        load_dataset(csv)
    csv.write_text("pets/cat/000.png,cat\npets/cat/missing.png,cat\npets/dog/000.png,dog\n")
    with pytest.raises(ValueError, match="missing.png: no such file"):
        load_dataset(csv)
    data = load_dataset(csv, skip_bad=True)
    assert [Path(path).name for path, _ in data.skipped] == ["missing.png"]


def test_missing_paths_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        load_dataset(str(tmp_path / "nothing.csv"))
    with pytest.raises(FileNotFoundError):
        load_dataset(str(tmp_path / "no" / "folder"))
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images in class sub-folders"):
        load_dataset(tmp_path / "empty")


def test_cifar10_name_reads_its_image_folder_form(tmp_path):
    make_folder(tmp_path / "train", classes=("airplane", "automobile"), per_class=10, size=(32, 32))
    make_folder(tmp_path / "test", classes=("airplane", "automobile"), per_class=5, size=(32, 32))
    data = load_dataset("cifar10", tmp_path)
    assert data.classes == ["airplane", "automobile"] and len(data.test) == 10


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_DATA / "cifar10-sample").is_dir(), reason="../shared/data/cifar10-sample absent")
def test_shared_cifar10_sample_as_an_image_folder():
    data = load_dataset(SHARED_DATA / "cifar10-sample")
    assert len(data.classes) == 10 and len(data.train) + len(data.val) + len(data.test) == 500
    assert data.image_size == (32, 32) and data.in_channels == 3 and data.skipped == []
    assert all(0.3 < m < 0.7 for m in data.mean) and all(0.15 < s < 0.35 for s in data.std)
