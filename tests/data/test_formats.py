"""Standard formats on small synthetic files: MNIST IDX, CIFAR batches, torchvision downloads."""

import gzip
import pickle
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from cnnkit.data import cifar, load_dataset
from cnnkit.data.idx import read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(folder, n_train=100, n_test=20, compress=False, size=28):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        arrays[prefix] = (images, labels)
        for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            if compress:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / stem).write_bytes(data)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_reads_with_official_test_split(tmp_path, compress):
    arrays = write_mnist(tmp_path, compress=compress)
    data = load_dataset("mnist", tmp_path, seed=1)
    assert (len(data.train), len(data.val), len(data.test)) == (90, 10, 20)
    assert data.classes == [str(d) for d in range(10)] and data.in_channels == 1 and data.image_size == (28, 28)
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(arrays["t10k"][0]))
    assert data.val.class_counts(10).tolist() == [1] * 10
    assert torch.equal(data.test.batch(torch.tensor([3]))[0][0, 0], torch.from_numpy(arrays["t10k"][0][3]) / 255.0)


def test_fashion_mnist_from_torchvisions_layout(tmp_path):
    write_mnist(tmp_path / "FashionMNIST" / "raw", compress=True)
    data = load_dataset("fashion-mnist", tmp_path, image_size=32)
    assert data.classes[0] == "T-shirt/top" and data.image_size == (32, 32)


def test_idx_bad_magic_is_named_before_reading(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + bytes(5))  # a label file under an image name
    with pytest.raises(ValueError, match=f"{path}: magic number 0x00000801 .*expected 0x00000803"):
        read_idx(path, ndim=3)
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ValueError, match="not an IDX header"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_short_or_long_file_is_refused(tmp_path, compress):
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    path = tmp_path / ("x.gz" if compress else "x")
    for broken, word in ((data[:-10], "truncated"), (data + b"\x00", "more" if compress else "holds")):
        path.write_bytes(gzip.compress(broken) if compress else broken)
        with pytest.raises(ValueError, match=f"{path}: IDX header says shape \\(4, 28, 28\\).*{word}"):
            read_idx(path, ndim=3)


def test_idx_header_claiming_too_much_and_bad_gzip(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, 100000, 100000, 1000))
    with pytest.raises(ValueError, match="over the limit"):
        read_idx(path)
    gz = tmp_path / "y.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=f"{gz}: corrupt gzip"):
        read_idx(gz)


def test_mnist_missing_files_and_count_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path)
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(ValueError, match="20 images but .* 7 labels"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(ValueError, match="root"):
        load_dataset("mnist")


def write_cifar(folder, checksums, n=20, hundred=False, monkeypatch=None):
    rng = np.random.default_rng(0)
    name = "cifar100" if hundred else "cifar10"
    files = cifar.BATCHES[name]
    folder.mkdir(parents=True)
    label_key, names_key = cifar.LABEL_KEYS[name]
    classes = [f"class{i}" for i in range(100 if hundred else 10)]
    written = {}
    for file in files["train"] + files["test"]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: [i % len(classes) for i in range(n)]}
        (folder / file).write_bytes(pickle.dumps(batch))
        written[file] = batch
    (folder / files["meta"]).write_bytes(pickle.dumps({names_key: classes}))
    for file in [*files["train"], *files["test"], files["meta"]]:
        checksums[file] = cifar.file_md5(folder / file)
    return written


@pytest.fixture
def checksums(monkeypatch):
    table = {"cifar10": {}, "cifar100": {}}
    monkeypatch.setattr(cifar, "CHECKSUMS", table)
    return table


def test_checksum_table_is_torchvisions():
    from torchvision.datasets import CIFAR10, CIFAR100

    for name, dataset in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
        published = dict(dataset.train_list + dataset.test_list) | {dataset.meta["filename"]: dataset.meta["md5"]}
        assert cifar.CHECKSUMS[name] == published


def test_cifar10_batches_with_good_checksums(tmp_path, checksums):
    written = write_cifar(tmp_path / "cifar-10-batches-py", checksums["cifar10"])
    data = load_dataset("cifar10", tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (90, 10, 20)
    assert data.classes[:2] == ["class0", "class1"] and data.image_size == (32, 32) and data.in_channels == 3
    expected = torch.from_numpy(written["test_batch"]["data"].reshape(-1, 3, 32, 32))
    assert torch.equal(data.test.images, expected) and data.augmentation == "crop-flip"


def test_cifar100_fine_labels(tmp_path, checksums):
    write_cifar(tmp_path / "cifar-100-python", checksums["cifar100"], n=200, hundred=True)
    data = load_dataset("cifar100", tmp_path)
    assert len(data.classes) == 100 and len(data.test) == 200


def test_cifar_wrong_checksum_is_refused_before_unpickling(tmp_path, checksums, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, checksums["cifar10"])
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0]}))
    monkeypatch.setattr(cifar._ArrayUnpickler, "load", lambda self: pytest.fail("unpickled a file with a bad checksum"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled a file with a bad checksum"))
    with pytest.raises(ValueError, match=f"{folder / 'data_batch_3'}: MD5 .* is not the published checksum"):
        cifar.read_batch(folder / "data_batch_3", "cifar10")


def test_cifar_pickle_running_code_is_refused_even_with_a_matching_checksum(tmp_path, checksums):
    class Exploit:
        def __reduce__(self):
            return (print, ("owned",))

    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, checksums["cifar10"])
    (folder / "test_batch").write_bytes(pickle.dumps({"data": Exploit(), "labels": [0]}))
    checksums["cifar10"]["test_batch"] = cifar.file_md5(folder / "test_batch")
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_dataset("cifar10", tmp_path)


def test_cifar_missing_files_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="batches.meta"):
        load_dataset("cifar10", tmp_path)


def test_download_without_network_names_dataset_and_url(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(RuntimeError, match=r"could not download cifar10 from https://www\.cs\.toronto\.edu/.*name resolution"):
        load_dataset("cifar10", tmp_path / "data", download=True)
    with pytest.raises(RuntimeError, match="could not download mnist from .*ossci-datasets"):
        load_dataset("mnist", tmp_path / "data", download=True)
