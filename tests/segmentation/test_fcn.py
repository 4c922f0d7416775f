"""FCN: bilinear transposed convolutions, FCN-32s/16s/8s shapes and gradients, and torchvision's
fcn_resnet50 state dict loading unchanged with the same outputs."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.segmentation import fcn_resnet50 as torchvision_fcn_resnet50

from cnnkit.segmentation.fcn import FCN, fcn_resnet50, learned_upsampling


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_learned_upsampling_starts_as_bilinear_interpolation(factor):
    x = torch.randn(1, 3, 6, 5)
    up = learned_upsampling(3, factor)(x)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert up.shape == expected.shape
    inner = slice(factor, -factor)  # borders differ: the transposed convolution pads with zeros
    assert torch.allclose(up[..., inner, inner], expected[..., inner, inner], atol=1e-5)


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_fcn_variants_label_every_pixel_and_train_every_parameter(variant):
    torch.manual_seed(0)
    model = FCN(5, variant, "resnet18")
    x = torch.randn(2, 3, 40, 45)  # not a multiple of 32: outputs are cropped back to the input
    masks = torch.randint(0, 5, (2, 40, 45))
    masks[:, :10] = 255
    logits = model(x)
    assert logits.shape == (2, 5, 40, 45) and torch.isfinite(logits).all()
    model.loss(x, masks).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_skips_start_at_zero_so_fcn8s_starts_as_fcn32s_upsampled_in_steps():
    torch.manual_seed(0)
    model = FCN(3, "8s", "resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        _, _, c5 = model.backbone(x)
        coarse = model.score_fr(c5)
        smooth = model.upscore8(model.upscore_pool4(model.upscore2(coarse)))
        assert torch.allclose(model(x), smooth, atol=1e-5)


def test_torchvision_fcn_resnet50_state_dict_loads_unchanged_and_gives_the_same_output():
    aux = True  # the main classifier and the auxiliary one on layer3
    torch.manual_seed(0)
    reference = torchvision_fcn_resnet50(weights=None, weights_backbone=None, num_classes=4, aux_loss=aux).eval()
    ours = fcn_resnet50(num_classes=4, aux=aux, memory_format=torch.contiguous_format).eval()
    assert set(ours.state_dict()) == set(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 45, 59)
    with torch.no_grad():
        expected = reference(x)
        out, aux_out = ours.logits_and_aux(x)
    assert torch.allclose(out, expected["out"], atol=1e-5)
    assert torch.allclose(aux_out, expected["aux"], atol=1e-5)
    fast = fcn_resnet50(num_classes=4).eval()  # channels_last, no auxiliary classifier: float rounding only
    fast.load_state_dict({k: v for k, v in reference.state_dict().items() if not k.startswith("aux_classifier")})
    with torch.no_grad():
        assert torch.allclose(fast(x), expected["out"], atol=1e-3, rtol=1e-3)
