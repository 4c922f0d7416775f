"""Real pretrained weights: akamaster's CIFAR-10 ResNet-20/32/44/56 files in cnnkit's models.

The files are legacy ``torch.save`` pickles ``{'best_prec1', 'state_dict'}`` with ``module.``
prefixes (DataParallel). On the 500 JPEG-compressed CIFAR-10 test images of
``../shared/data/cifar10-sample`` a faithful implementation scores 79.8 / 83.6 / 82.8 / 83.0 %
top-1 (the published 91.7-93.4 % are on the lossless originals). Skipped when the shared data
folder is absent, as in a user's fresh checkout.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EXPECTED_TOP1 = {"resnet20": 79.8, "resnet32": 83.6, "resnet44": 82.8, "resnet56": 83.0}

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent"),
]


@pytest.fixture(scope="module")
def cifar10_sample():
    """(images (500, 3, 32, 32) normalised, labels (500,)); labels follow sorted class folders."""
    root = SHARED_DATA / "cifar10-sample"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert classes[0] == "airplane" and classes[-1] == "truck" and len(classes) == 10
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).glob("*.jpg")):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255  # (N, 3, 32, 32)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x, torch.tensor(labels)


@pytest.mark.parametrize("name", list(EXPECTED_TOP1))
def test_pretrained_cifar_resnet_top1(name, cifar10_sample):
    from cnnkit.models import create_model

    (path,) = (SHARED_DATA / "weights").glob(f"{name}-*.th")
    model = create_model(name, num_classes=10, weights=path).eval()
    images, labels = cifar10_sample
    assert len(labels) == 500
    with torch.inference_mode():
        predictions = model(images).argmax(dim=1)
    top1 = 100.0 * (predictions == labels).float().mean().item()
    print(f"{name}: top-1 {top1:.1f} % on {len(labels)} images")
    assert abs(top1 - EXPECTED_TOP1[name]) <= 0.5, f"{name}: top-1 {top1:.1f} %"


def test_folding_batch_norm_keeps_the_pretrained_accuracy(cifar10_sample):
    from cnnkit.models import create_model
    from cnnkit.models.speed import fold_batch_norm

    (path,) = (SHARED_DATA / "weights").glob("resnet20-*.th")
    model = create_model("resnet20", num_classes=10, weights=path).eval()
    images, labels = cifar10_sample
    folded = fold_batch_norm(model, images[:8]).to(memory_format=torch.channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.inference_mode():
        logits = model(images)
        folded_logits = folded(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(folded_logits, logits, atol=1e-4, rtol=1e-4)
    top1 = 100.0 * (folded_logits.argmax(1) == labels).float().mean().item()
    assert abs(top1 - EXPECTED_TOP1["resnet20"]) <= 0.5
