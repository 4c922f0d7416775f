"""Reading images safely: every mode to float RGB/gray in [0, 1], bad files named and refused."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data import MAX_PIXELS, read_image, sample_image, save_image


def write(image: Image.Image, path, **options):
    image.save(path, **options)
    return path


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA", "CMYK"])
def test_every_mode_becomes_float_in_unit_range(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 9, 3), dtype=np.uint8))
    image = rgb.convert(mode)
    path = write(image, tmp_path / ("x.jpg" if mode == "CMYK" else "x.png"))
    tensor = read_image(path)
    assert tensor.dtype == torch.float32 and tensor.shape[1:] == (12, 9)
    assert tensor.shape[0] == (1 if mode in ("L",) else 3)
    assert 0 <= tensor.min() and tensor.max() <= 1
    assert read_image(path, gray=True).shape[0] == 1 and read_image(path, gray=False).shape[0] == 3


def test_rgb_values_are_exact(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    tensor = read_image(write(Image.fromarray(array), tmp_path / "x.png"))
    np.testing.assert_allclose(tensor.numpy().transpose(1, 2, 0), array / 255.0, atol=1e-7)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    array = np.array([[0, 1000, 65535], [30000, 40000, 50000]], dtype=np.uint16)
    path = write(Image.fromarray(array), tmp_path / "deep.png")
    tensor = read_image(path)
    np.testing.assert_allclose(tensor[0].numpy(), array / 65535.0, atol=1e-6)
    assert 0.4 < float(tensor[0, 1, 0]) < 0.5  # 30000 is not clipped to 1


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((4, 6, 3), dtype=np.uint8)
    array[0, 0] = 255  # a white top-left pixel on a 6-wide, 4-high image
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=100)
    tensor = read_image(path)
    assert tensor.shape[1:] == (6, 4)
    assert float(tensor[:, 0, -1].mean()) > 0.8  # the white corner is now top-right


def test_missing_directory_text_and_eps_are_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        read_image(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    with pytest.raises(ValueError, match="not an image: .*notes.jpg"):
        read_image(text)
    eps = tmp_path / "drawing.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ValueError, match="not an image: .*drawing.png"):
        read_image(eps)


def test_truncated_jpeg_is_named(tmp_path):
    path = write(Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)), tmp_path / "full.jpg")
    data = path.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.jpg: corrupt or truncated"):
        read_image(cut)


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels, with a tiny body."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_claiming(30000, 30000))
    assert 30000 * 30000 > MAX_PIXELS
    with pytest.raises(ValueError, match="bomb.png: image exceeds the limit"):
        read_image(bomb)
    smaller = tmp_path / "smaller.png"
    smaller.write_bytes(png_header_claiming(11000, 10000))  # under Pillow's own limit, over ours
    with pytest.raises(ValueError, match="smaller.png: image of 11000×10000 pixels exceeds the limit"):
        read_image(smaller)


def test_save_image_round_trip_and_errors(tmp_path):
    image = sample_image("coffee")
    path = save_image(image, tmp_path / "out" / "coffee.png")
    assert [p.name for p in path.parent.iterdir()] == ["coffee.png"]  # no temporary left behind
    np.testing.assert_allclose(read_image(path).numpy(), image.numpy(), atol=1 / 255)
    with pytest.raises(ValueError, match="unknown image suffix"):
        save_image(image, tmp_path / "coffee.xyz")
    with pytest.raises(ValueError, match="must be"):
        save_image(torch.rand(2, 4, 4), tmp_path / "two.png")
    assert list((tmp_path).glob("*.tmp")) == []


def test_sample_images_are_real_photographs():
    camera = sample_image("camera")
    assert camera.shape == (1, 512, 512) and camera.std() > 0.2
    assert sample_image("astronaut").shape == (3, 512, 512)
    with pytest.raises(ValueError, match="unknown sample image"):
        sample_image("lena")
