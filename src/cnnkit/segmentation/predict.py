"""Segmenting image files: open a model, label every pixel, write overlays and masks.

`cnnkit.inference.open_model` opens a run folder, a segmentation checkpoint or a state dict
written for torchvision's ``fcn_resnet50`` (`torchvision_fcn`: 21 classes named as Pascal VOC's,
other counts by number). `predict_files` writes for each image ``NAME_overlay.png`` (the image with
class colours blended in and a legend of the classes present) and ``NAME_mask.png`` (a palette
PNG whose pixel values are the class indices, as VOC ships its labels).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from cnnkit.data.images import read_image
from cnnkit.files import atomic_write
from cnnkit.data.masks import VOC_CLASSES, default_palette
from cnnkit.segmentation.segmenter import Segmenter

FCN_KEY = "classifier.4.weight"


def torchvision_fcn(state: dict, path: str | os.PathLike) -> Segmenter:
    """A `Segmenter` of ``fcn_resnet50`` loaded with the torchvision state dict ``state`` read
    from ``path`` (21 classes named as Pascal VOC's, other counts by number)."""
    from cnnkit.segmentation.fcn import fcn_resnet50

    key = FCN_KEY
    if key not in state:
        raise ValueError(f"{path}: neither a cnnkit segmentation checkpoint nor an fcn_resnet50 state dict (no {key})")
    num_classes = state[key].shape[0]
    model = fcn_resnet50(num_classes, aux="aux_classifier.4.weight" in state)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{path} does not fit fcn_resnet50: {str(error).splitlines()[0]}") from None
    classes = list(VOC_CLASSES) if num_classes == len(VOC_CLASSES) else [str(k) for k in range(num_classes)]
    return Segmenter(model.eval(), "fcn", classes, default_palette(num_classes))


def colour_mask(labels: Tensor, palette) -> np.ndarray:
    """``(H, W)`` class indices → ``(H, W, 3)`` uint8 colours."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[labels.clamp(0, 255).numpy().astype(np.uint8)]


def overlay(image: Tensor, labels: Tensor, classes: list[str], palette, alpha: float = 0.5) -> Image.Image:
    """The image ``(3, H, W)`` in [0, 1] with each pixel's class colour blended in at ``alpha``
    and, on the right, a legend: a swatch and the name of every class present, most pixels first."""
    pixels = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.float32)
    blended = ((1 - alpha) * pixels + alpha * colour_mask(labels, palette)).round().astype(np.uint8)
    counts = torch.bincount(labels.flatten().clamp(0, len(classes) - 1), minlength=len(classes))
    present = [k for k in counts.argsort(descending=True).tolist() if counts[k] > 0]
    line = 14
    height = max(blended.shape[0], line * len(present) + 8)
    width = blended.shape[1] + 16 + 8 * max(len(classes[k]) for k in present) + 24
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(Image.fromarray(blended), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = blended.shape[1] + 6
    for row, k in enumerate(present):
        y = 4 + row * line
        draw.rectangle([x, y, x + 10, y + 10], fill=tuple(palette[k]), outline=(0, 0, 0))
        draw.text((x + 16, y - 1), classes[k], fill=(0, 0, 0))
    return canvas


def save_mask(labels: Tensor, palette, path: str | os.PathLike) -> Path:
    """Write ``(H, W)`` class indices as a palette PNG (pixel value = class index), atomically."""
    path = Path(path)
    picture = Image.fromarray(labels.clamp(0, 255).numpy().astype(np.uint8), mode="P")
    flat = [value for colour in palette for value in colour]
    picture.putpalette(flat + [0] * (768 - len(flat)))
    with atomic_write(path) as temporary:
        picture.save(temporary, format="PNG")
    return path


def predict_files(segmenter: Segmenter, paths: list[str | os.PathLike], output: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu") -> list[dict]:
    """Segment each image file with the model on ``device``; with ``output``, write
    ``NAME_overlay.png``, ``NAME_mask.png`` and ``predictions.json``. Returns per image the file,
    its size and the share of pixels per class."""
    segmenter.to(device)
    records = []
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
    for path in paths:
        image = read_image(path, gray=False)
        labels = segmenter.predict([image])[0]
        counts = torch.bincount(labels.flatten(), minlength=len(segmenter.classes))
        shares = {segmenter.classes[k]: round(float(c) / labels.numel(), 4) for k, c in enumerate(counts.tolist()) if c}
        record = {"file_name": str(path), "height": labels.shape[0], "width": labels.shape[1], "classes": shares}
        if output is not None:
            stem = Path(output) / Path(path).stem
            with atomic_write(stem.with_name(stem.name + "_overlay.png")) as temporary:
                overlay(image, labels, segmenter.classes, segmenter.palette).save(temporary, format="PNG")
            save_mask(labels, segmenter.palette, stem.with_name(stem.name + "_mask.png"))
            record.update(overlay=str(stem) + "_overlay.png", mask=str(stem) + "_mask.png")
        records.append(record)
    if output is not None:
        with atomic_write(Path(output) / "predictions.json") as temporary:
            temporary.write_text(json.dumps(records, indent=1))
    return records
