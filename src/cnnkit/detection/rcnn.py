"""R-CNN (Girshick, Donahue, Darrell & Malik 2014): regions with CNN features.

    selective search (~2000 regions; §2.1) → warp each region, with context, to the CNN's input
    size → CNN features of each region (§2.2) → one linear SVM per class (§2.3, hard negative
    mining) → class-specific bounding-box regression (appendix C) → greedy NMS per class

The CNN is the same backbone and fc6-fc7 head that Fast and Faster R-CNN use: a region warped
to ``stride × 7`` pixels gives the 7×7 map that RoI pooling gives them. It is first fine-tuned
as a (K+1)-way classifier on warped regions (IoU ≥ 0.5 with an object: its class; else
background; 1:3 positives to background per batch, §2.3 "supervised pre-training / domain-
specific fine-tuning"); its fc7 output is then the feature. The SVMs take the ground-truth
boxes as positives and regions with IoU < 0.3 as negatives, starting from a random subset and
adding the negatives the current SVM scores above −1 (hard negative mining). Box regression is
ridge regression from the features of regions with IoU ≥ 0.6 to their box-coding targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou, roi_align

from cnnkit.detection.backbones import build_backbone
from cnnkit.detection.box_coder import BoxCoder
from cnnkit.detection.dataset import DetectionDataset
from cnnkit.detection.postprocess import select_detections
from cnnkit.detection.proposals import SelectiveSearch
from cnnkit.detection.roi_heads import TwoMLPHead
from cnnkit.detection.structures import Detections
from cnnkit.detection.transform import IMAGENET_MEAN, IMAGENET_STD


def warp_regions(image: Tensor, boxes: Tensor, size: int, context: float = 0.1) -> Tensor:
    """Each box of ``image (3, H, W)``, widened by ``context`` of its size on every side,
    resampled (bilinear) to ``(R, 3, size, size)`` whatever its aspect ratio (R-CNN §2.1 "warp")."""
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    pad = torch.stack([-widths, -heights, widths, heights], 1) * context
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes + pad], 1)
    return roi_align(image[None], rois, size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


class RCNN(nn.Module):
    """``RCNN(backbone, box_head, categories)``; `fit` trains it stage by stage, `predict` detects."""

    def __init__(self, backbone: nn.Module, box_head: TwoMLPHead, categories: list[str], region_size: int = 56,
                 proposer: SelectiveSearch | None = None, score_thresh: float = 0.05, nms_thresh: float = 0.3) -> None:
        super().__init__()
        self.backbone, self.box_head, self.categories = backbone, box_head, list(categories)
        self.region_size, self.proposer = region_size, proposer or SelectiveSearch()
        features, classes = box_head.fc7.out_features, len(categories)
        self.classifier = nn.Linear(features, classes + 1)  # used only for fine-tuning
        self.svm = nn.Linear(features, classes)  # one linear SVM per class: w_k · φ + b_k
        self.box_regressor = nn.Linear(features, 4 * classes)  # per-class ridge regression
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh

    def region_features(self, image: Tensor, boxes: Tensor, batch_size: int = 256) -> Tensor:
        """fc7 features ``(R, D)`` of each warped region: the CNN runs once per region."""
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        out = []
        for start in range(0, len(boxes), batch_size):
            regions = warp_regions((image - mean) / std, boxes[start : start + batch_size], self.region_size)
            out.append(self.box_head(self.backbone(regions)["0"]))  # (r, 128, 7, 7) → (r, D)
        return torch.cat(out) if out else torch.zeros(0, self.box_head.fc7.out_features)

    # -- training, stage by stage ---------------------------------------------------------------
    def fit(self, dataset: DetectionDataset, epochs: int = 2, regions_per_image: int = 32, lr: float = 0.01,
            log=print) -> None:
        proposals = [self.proposer(dataset.image(i)) for i in range(len(dataset))]
        log(f"R-CNN: {sum(map(len, proposals)) / max(1, len(dataset)):.0f} selective-search regions per image")
        self.fine_tune(dataset, proposals, epochs, regions_per_image, lr, log)
        features, ious, labels, matched, regions = self._features(dataset, proposals)
        self.train_svms(features, ious, labels, log)
        self.train_box_regressors(features, ious, labels, matched, regions)
        self.eval()

    def fine_tune(self, dataset, proposals, epochs, regions_per_image, lr, log) -> None:
        """(K+1)-way classification of warped regions with cross-entropy, SGD."""
        parameters = [*self.backbone.parameters(), *self.box_head.parameters(), *self.classifier.parameters()]
        optimizer = torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=1e-4)
        self.train()
        for epoch in range(epochs):
            total = 0.0
            for i in torch.randperm(len(dataset)).tolist():
                image, target = dataset.image(i), dataset.targets[i]
                boxes, labels = self._labelled_regions(proposals[i], target, regions_per_image)
                logits = self.classifier(self.region_features(image, boxes))
                loss = F.cross_entropy(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
            log(f"R-CNN fine-tuning epoch {epoch + 1}/{epochs}: loss {total / max(1, len(dataset)):.3f}")

    def _labelled_regions(self, proposals, target, count):
        boxes = torch.cat([proposals, target["boxes"]])
        labels = torch.zeros(len(boxes), dtype=torch.int64)
        if len(target["boxes"]):
            iou, index = box_iou(boxes, target["boxes"]).max(1)
            labels = torch.where(iou >= 0.5, target["labels"][index], labels)
        positive, negative = torch.where(labels > 0)[0], torch.where(labels == 0)[0]
        positive = positive[torch.randperm(len(positive))[: count // 4]]
        negative = negative[torch.randperm(len(negative))[: count - len(positive)]]
        keep = torch.cat([positive, negative])
        return boxes[keep], labels[keep]

    @torch.no_grad()
    def _features(self, dataset, proposals):
        """fc7 features of every proposal and ground-truth box, with their best IoU, its class,
        the matched box and the region itself."""
        self.eval()
        features, ious, labels, matched, regions = [], [], [], [], []
        for i in range(len(dataset)):
            target = dataset.targets[i]
            boxes = torch.cat([proposals[i], target["boxes"]])
            if len(target["boxes"]):
                iou, index = box_iou(boxes, target["boxes"]).max(1)
                label, match = target["labels"][index], target["boxes"][index]
            else:
                iou, label, match = torch.zeros(len(boxes)), torch.zeros(len(boxes), dtype=torch.int64), boxes
            features.append(self.region_features(dataset.image(i), boxes))
            ious.append(iou), labels.append(label), matched.append(match), regions.append(boxes)
        return tuple(torch.cat(x) for x in (features, ious, labels, matched, regions))

    def train_svms(self, features, ious, labels, log, rounds: int = 3, C: float = 1.0, steps: int = 200) -> None:
        """One linear SVM per class: hinge loss + ½‖w‖²/C, positives = ground truth (IoU 1),
        negatives = IoU < 0.3 (or another class), mined hard over ``rounds``."""
        weights, biases = [], []
        for k in range(1, len(self.categories) + 1):
            positive = features[(labels == k) & (ious >= 0.999)]
            negatives = features[(ious < 0.3) | ((labels != k) & (ious >= 0.5))]
            active = negatives[torch.randperm(len(negatives))[: max(1, 4 * len(positive))]]
            w, b = torch.zeros(features.shape[1]), torch.zeros(())
            for _ in range(rounds):
                w, b = _fit_linear_svm(positive, active, C, steps, w, b)
                hard = negatives[negatives @ w + b > -1.0]  # the negatives inside the margin
                if len(hard) == 0:
                    break
                active = torch.unique(torch.cat([active, hard]), dim=0)
            weights.append(w), biases.append(b)
        self.svm.weight.data = torch.stack(weights)
        self.svm.bias.data = torch.stack(biases)
        log(f"R-CNN: {len(self.categories)} linear SVMs trained with hard negative mining")

    def train_box_regressors(self, features, ious, labels, matched, regions, ridge: float = 10.0) -> None:
        """Per class, ridge regression from features to t = encode(matched box, region) on IoU ≥ 0.6."""
        weight = torch.zeros(len(self.categories) * 4, features.shape[1])
        bias = torch.zeros(len(self.categories) * 4)
        for k in range(1, len(self.categories) + 1):
            chosen = (labels == k) & (ious >= 0.6)
            if chosen.sum() < 2:
                continue
            x = torch.cat([features[chosen], torch.ones(int(chosen.sum()), 1)], 1).double()
            t = self.box_coder.encode(matched[chosen], regions[chosen]).double()
            penalty = ridge * torch.eye(x.shape[1], dtype=torch.float64)
            penalty[-1, -1] = 0  # no penalty on the bias
            solution = torch.linalg.solve(x.T @ x + penalty, x.T @ t).float()  # (D+1, 4)
            weight[4 * (k - 1) : 4 * k] = solution[:-1].T
            bias[4 * (k - 1) : 4 * k] = solution[-1]
        self.box_regressor.weight.data, self.box_regressor.bias.data = weight, bias

    # -- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images: list[Tensor], proposals: list[Tensor] | None = None) -> list[Detections]:
        was_training = self.training
        self.eval()
        try:
            results = []
            for i, image in enumerate(images):
                boxes = self.proposer(image) if proposals is None else proposals[i]
                features = self.region_features(image, boxes)
                scores = torch.sigmoid(self.svm(features))  # (R, K) SVM margins squashed to (0, 1)
                scores = torch.cat([torch.zeros(len(boxes), 1), scores], 1)
                deltas = torch.cat([torch.zeros(len(boxes), 4), self.box_regressor(features)], 1)
                refined = self.box_coder.decode(deltas, boxes)  # (R, K+1, 4)
                results.append(select_detections(scores, refined, tuple(image.shape[-2:]), self.score_thresh,
                                                 self.nms_thresh))
            return results
        finally:
            self.train(was_training)


def _fit_linear_svm(positive: Tensor, negative: Tensor, C: float, steps: int, w: Tensor, b: Tensor):
    """Minimise ½‖w‖² + C Σ max(0, 1 − y (w·x + b)) (mean over examples) by L-BFGS from (w, b)."""
    x = torch.cat([positive, negative])
    y = torch.cat([torch.ones(len(positive)), -torch.ones(len(negative))])
    w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = 0.5 * (w * w).sum() / (C * len(x)) + F.relu(1 - y * (x @ w + b)).pow(2).mean()  # squared hinge
        loss.backward()
        return loss

    optimizer.step(objective)
    return w.detach(), b.detach()


def rcnn(categories: list[str], backbone: str = "small", representation_size: int = 256,
         max_proposals: int = 300) -> RCNN:
    """R-CNN on a stride-8 backbone: regions warped to 56×56 give a 7×7 map, as RoI pooling does."""
    if not categories:
        raise ValueError("pass categories (names of classes 1..K)")
    trunk = build_backbone(backbone)
    return RCNN(trunk, TwoMLPHead(trunk.out_channels * 49, representation_size), categories,
                proposer=SelectiveSearch(max_proposals))
