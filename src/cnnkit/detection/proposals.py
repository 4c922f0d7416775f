"""Region proposals by selective search (Uijlings et al. 2013), R-CNN's and Fast R-CNN's source
of candidate boxes (R-CNN §2.1: "~2000 category-independent region proposals").

Selective search over-segments the image (Felzenszwalb-Huttenlocher graph segmentation) and
merges neighbouring regions greedily by colour, texture, size and fill similarity; every region
ever formed is a proposal. OpenCV's implementation (``cv2.ximgproc.segmentation``) is used; it
ranks the regions with a random factor (the paper's "pseudo-random ranking") from C's
``rand()``, which is seeded before every image, so that the proposals are a function of the
image alone: the same in every epoch, after a resume and on every process.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
import torch
from torch import Tensor

from cnnkit.data.detection import DetectionDataset

RANKING_SEED = 0


class SelectiveSearch:
    """``proposals(image (3, H, W) in [0, 1]) → (P, 4)`` xyxy boxes, at most ``max_proposals``,
    in the order selective search ranks them, without boxes under ``min_size`` pixels a side or
    exact duplicates. ``mode``: "fast" (one colour space, two strategies) or "quality"."""

    def __init__(self, max_proposals: int = 300, mode: str = "fast", min_size: int = 4) -> None:
        if mode not in ("fast", "quality"):
            raise ValueError(f"unknown selective search mode {mode!r}; choose fast or quality")
        self.max_proposals, self.mode, self.min_size = max_proposals, mode, min_size

    def __call__(self, image: Tensor) -> Tensor:
        import cv2

        cv2.setNumThreads(1)
        pixels = (image.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        search.setBaseImage(np.ascontiguousarray(pixels[..., ::-1]))  # OpenCV wants BGR
        if self.mode == "fast":
            search.switchToSelectiveSearchFast()
        else:
            search.switchToSelectiveSearchQuality()
        _c_srand()(RANKING_SEED)
        rects = search.process()  # (P, 4) x, y, w, h
        boxes = torch.from_numpy(rects.astype(np.float32)).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        keep = ((boxes[:, 2] - boxes[:, 0]) >= self.min_size) & ((boxes[:, 3] - boxes[:, 1]) >= self.min_size)
        boxes = boxes[keep]
        _, first = np.unique(boxes.numpy(), axis=0, return_index=True)
        return boxes[torch.from_numpy(np.sort(first))][: self.max_proposals]


@functools.cache
def _c_srand():
    """``srand`` of the C library whose ``rand()`` OpenCV's ranking draws on; where there is none
    to load (Windows), a no-op, and the ranking varies from call to call."""
    try:
        return ctypes.CDLL(None).srand
    except (OSError, TypeError, AttributeError):
        return lambda seed: None


def attach_proposals(dataset: DetectionDataset, proposer: SelectiveSearch) -> DetectionDataset:
    """The dataset with each image's proposals computed once and kept in its target as
    ``"proposals" (P, 4)``: R-CNN and Fast R-CNN read them there in every epoch instead of
    searching again (selective search is deterministic, so the boxes are the same)."""
    out = dataset.subset(range(len(dataset)))
    out.targets = [{**target, "proposals": proposer(dataset.image(index))} for index, target in enumerate(dataset.targets)]
    return out
