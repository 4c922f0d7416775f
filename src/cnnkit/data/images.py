"""Images in and out: decode any common file safely to a float tensor, write one back.

Every image becomes a ``(C, H, W)`` float32 tensor in [0, 1]: ``C = 3`` (RGB) or ``C = 1``
(grayscale). Palette, alpha, CMYK and 16-bit images are converted correctly (16-bit values are
scaled by 1/65535, not clipped) and the EXIF orientation is applied.

Refused, with an error that names the file: a missing path or a directory, a file that is not
an image in an allowed format (PostScript/EPS is never parsed), a truncated or corrupt file, and
an image whose header claims more than :data:`MAX_PIXELS` pixels — checked before anything is
decoded, so a decompression bomb costs no memory.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnkit.files import atomic_write

MAX_PIXELS = 100_000_000
"""Largest image (width × height) that is decoded; larger headers are refused unread."""

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO")
"""Formats Pillow may open; everything else (EPS, PDF, …) is refused as "not an image"."""

SAMPLE_IMAGES = ("camera", "astronaut", "coffee", "chelsea", "brick", "moon")
"""Real photographs shipped with scikit-image, available offline by name."""


def _check_path(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected an image file")


@contextlib.contextmanager
def _own_pixel_limit():
    """Silence Pillow's decompression-bomb warning: :data:`MAX_PIXELS` is checked instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _set_colour(image: torch.Tensor, gray: bool | None) -> torch.Tensor:
    """Convert (C, H, W) to luminance Y = 0.299 R + 0.587 G + 0.114 B (gray=True), RGB (False), or keep."""
    if gray is True and image.shape[0] == 3:
        return (image * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
    if gray is False and image.shape[0] == 1:
        return image.expand(3, -1, -1).clone()
    return image


def _to_array(image: Image.Image) -> np.ndarray:
    """Decode to a float32 array (H, W, C) in [0, 1], C = 1 for grayscale files and 3 otherwise."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        array = np.clip(values / scale, 0, 1).astype(np.float32)[..., None]
    elif image.mode == "F":
        array = np.clip(np.asarray(image, dtype=np.float32), 0, 1)[..., None]
    else:
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA"):  # composite on white: what a viewer shows
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image.convert("RGBA"))
        target = "L" if image.mode in ("L", "1") else "RGB"
        array = np.asarray(image.convert(target), dtype=np.float32) / 255.0
        array = array[..., None] if array.ndim == 2 else array
    return array


@contextlib.contextmanager
def _open_checked(path: Path):
    """Open ``path`` with Pillow, refuse it before decoding when too large; errors name the file."""
    _check_path(path)
    try:
        with _own_pixel_limit(), Image.open(path, formats=FORMATS) as image:
            width, height = image.size  # from the header; nothing decoded yet
            if width * height > MAX_PIXELS:
                raise ValueError(
                    f"{path}: image of {width}×{height} pixels exceeds the limit of {MAX_PIXELS:,} "
                    "(a decompression bomb?); refusing to decode it"
                )
            yield image
    except UnidentifiedImageError:
        raise ValueError(f"not an image: {path} (allowed formats: {', '.join(FORMATS)})") from None
    except Image.DecompressionBombError as error:  # Pillow's own check fires first for the largest
        raise ValueError(f"{path}: image exceeds the limit of {MAX_PIXELS:,} pixels ({error}); refusing to decode it") from None
    except (OSError, SyntaxError) as error:  # Pillow reports truncation and corruption this way
        raise ValueError(f"{path}: corrupt or truncated image ({error})") from None


def read_image(path: str | os.PathLike, gray: bool | None = None) -> torch.Tensor:
    """Read an image file as a ``(C, H, W)`` float32 tensor in [0, 1].

    ``gray=None`` keeps the file's colour (C = 1 for grayscale files, 3 otherwise);
    ``gray=True`` converts to luminance Y = 0.299 R + 0.587 G + 0.114 B; ``gray=False`` to RGB.

    Raises:
        FileNotFoundError, IsADirectoryError: the path is not a file.
        ValueError: not an image, truncated or corrupt, or larger than :data:`MAX_PIXELS`.
    """
    path = Path(path)
    with _open_checked(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        array = _to_array(image)
    return _set_colour(torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))), gray)


def check_image(path: str | os.PathLike) -> tuple[int, int, int]:
    """Check an image file's header without decoding its pixels: ``(channels, height, width)``.

    Catches what can be seen cheaply — a missing file, a file that is not an image in an
    allowed format, a header over :data:`MAX_PIXELS` — with the errors of :func:`read_image`;
    truncation shows only when the pixels are read. Height and width are after EXIF rotation;
    channels is 1 for grayscale modes and 3 otherwise, as :func:`read_image` returns them.
    """
    path = Path(path)
    with _open_checked(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):  # rotated by 90° or 270°
            width, height = height, width
        channels = 1 if image.mode in ("L", "1", "I", "F") or image.mode.startswith("I;16") else 3
    return channels, height, width


def sample_image(name: str = "camera", gray: bool | None = None) -> torch.Tensor:
    """A built-in photograph from scikit-image (see :data:`SAMPLE_IMAGES`) as ``(C, H, W)`` in [0, 1]."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")
    import skimage.data

    array = getattr(skimage.data, name)().astype(np.float32) / 255.0
    image = torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())
    return _set_colour(image, gray)


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a ``(C, H, W)`` or ``(H, W)`` tensor in [0, 1] as an 8-bit image, atomically.

    Values outside [0, 1] are clipped; C must be 1 or 3. The format follows the suffix.
    """
    path = Path(path)
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be (H, W), (1, H, W) or (3, H, W), got {tuple(image.shape)}")
    array = (image.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()).transpose(1, 2, 0)
    picture = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    path.parent.mkdir(parents=True, exist_ok=True)
    file_format = Image.registered_extensions().get(path.suffix.lower())
    if file_format is None:
        raise ValueError(f"{path}: unknown image suffix {path.suffix!r}; use .png or .jpg")
    with atomic_write(path) as temporary:
        picture.save(temporary, format=file_format)
    return path
