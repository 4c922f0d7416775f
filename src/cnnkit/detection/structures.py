"""What a detector returns and what a detection dataset holds, as typed values.

`Detections` is one image's result (detectron2's ``Instances`` in spirit): parallel tensors
``boxes (R, 4)``, ``scores (R,)``, ``labels (R,)`` and optionally ``masks (R, H, W)``, indexed
together. Boxes are ``(x1, y1, x2, y2)`` in pixels of the input image, x to the right, y down.
Labels are contiguous class indices ``1..K``; 0 is the background and never returned.

A *target* (what training reads) is a plain dict ``{"boxes": (G, 4) float, "labels": (G,)
int64}`` with an optional ``"masks": (G, H, W) bool``: the same layout torchvision's
transforms.v2 keep right under flips, resizes and crops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class Detections:
    """One image's detections: ``boxes (R, 4)`` xyxy pixels, ``scores (R,)`` in [0, 1],
    ``labels (R,)`` int64 in 1..K, ``masks (R, H, W)`` or None. ``d[i]``, ``d[mask]`` and
    ``d[indices]`` select detections (all fields together); ``len(d)`` is R."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    masks: Tensor | None = None

    def __post_init__(self) -> None:
        count = self.boxes.shape[0]
        if self.boxes.dim() != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (R, 4), got {tuple(self.boxes.shape)}")
        for name in ("scores", "labels", "masks"):
            value = getattr(self, name)
            if value is not None and value.shape[0] != count:
                raise ValueError(f"{name} has {value.shape[0]} rows, boxes {count}")

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def __getitem__(self, index) -> Detections:
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Detections(
            self.boxes[index], self.scores[index], self.labels[index],
            None if self.masks is None else self.masks[index],
        )

    @classmethod
    def empty(cls) -> Detections:
        return cls(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64))

    def to(self, device) -> Detections:
        return replace(self, **{name: None if value is None else value.to(device) for name, value in vars(self).items()})

    def above(self, score_threshold: float) -> Detections:
        """The detections with score ≥ ``score_threshold``."""
        return self[self.scores >= score_threshold]

    def to_coco(self, image_id: int, category_ids: list[int]) -> list[dict]:
        """COCO result records ``{image_id, category_id, bbox: [x, y, w, h], score}``;
        ``category_ids[label - 1]`` maps a contiguous label back to the dataset's category id."""
        records = []
        for box, score, label in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist()):
            x1, y1, x2, y2 = box
            records.append({
                "image_id": int(image_id), "category_id": int(category_ids[label - 1]),
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)], "score": round(score, 5),
            })
        return records
