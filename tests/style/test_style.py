"""Style transfer: the losses against direct computations, and stylize's behaviour on small images."""

import numpy as np
import pytest
import torch
from torch import nn

from cnnkit.style import (
    StyleConfig,
    combine_luminance,
    content_loss,
    gram_matrix,
    rgb_to_yiq,
    style_features,
    style_loss,
    stylize,
    total_variation,
    yiq_to_rgb,
)


def test_gram_matrix_equals_the_double_sum():
    features = torch.randn(2, 4, 5, 3, dtype=torch.float64)
    n, c, h, w = features.shape
    expected = np.zeros((n, c, c))
    array = features.numpy()
    for b in range(n):
        for i in range(c):
            for j in range(c):
                expected[b, i, j] = sum(array[b, i, y, x] * array[b, j, y, x] for y in range(h) for x in range(w)) / (c * h * w)
    assert np.allclose(gram_matrix(features).numpy(), expected, atol=1e-12)
    assert torch.allclose(gram_matrix(features), gram_matrix(features).transpose(1, 2))  # symmetric


def test_gram_matrix_does_not_depend_on_image_size_for_a_repeated_texture():
    tile = torch.randn(1, 3, 4, 4)
    assert torch.allclose(gram_matrix(tile), gram_matrix(tile.repeat(1, 1, 3, 2)), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gram_matrix(torch.randn(3, 4, 4))


def test_content_style_and_total_variation_losses():
    f, p = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    assert torch.isclose(content_loss(f, p), ((f - p) ** 2).sum() / 48)
    grams = {"a": torch.randn(1, 3, 3), "b": torch.randn(1, 5, 5)}
    targets = {"a": torch.randn(1, 3, 3), "b": torch.randn(1, 5, 5)}
    expected = 2.0 * ((grams["a"] - targets["a"]) ** 2).mean() + 0.5 * ((grams["b"] - targets["b"]) ** 2).mean()
    assert torch.isclose(style_loss(grams, targets, {"a": 2.0, "b": 0.5}), expected)
    image = torch.rand(1, 3, 5, 6)
    array = image.numpy()
    tv = (np.diff(array, axis=2) ** 2).mean() + (np.diff(array, axis=3) ** 2).mean()
    assert np.isclose(float(total_variation(image)), tv)
    assert float(total_variation(torch.full((1, 3, 5, 5), 0.3))) == 0.0


def test_yiq_round_trip_and_luminance_combination():
    image = torch.rand(3, 6, 7)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-5)
    gray = torch.full((3, 6, 7), 0.4)
    assert torch.allclose(rgb_to_yiq(gray)[1:], torch.zeros(2, 6, 7), atol=1e-6)  # no chrominance in grey
    colour = torch.rand(3, 6, 7) * 0.5 + 0.25
    mixed = combine_luminance(gray, colour)
    assert torch.allclose(rgb_to_yiq(mixed)[0], torch.full((6, 7), 0.4), atol=1e-4)
    assert torch.allclose(rgb_to_yiq(mixed)[1:], rgb_to_yiq(colour)[1:], atol=0.05)  # clipping may move it a little


@pytest.fixture(scope="module")
def features():
    return style_features(seed=0)


@pytest.fixture(scope="module")
def pictures():
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(3, 40, 56, generator=generator)
    content[:, 10:30, 15:40] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]  # an object
    stripes = (torch.arange(48).float() / 3).sin().add(1).div(2)
    style = torch.stack([stripes[None].expand(36, 48), stripes[:, None].expand(48, 36).T, torch.full((36, 48), 0.3)])
    return content, style  # different sizes and aspect ratios


def test_from_noise_each_loss_falls_alone_and_the_total_together(features, pictures):
    content, style = pictures
    runs = {
        "content": StyleConfig(size=48, steps=12, init="noise", seed=3, style_weight=0.0),
        "style": StyleConfig(size=48, steps=12, init="noise", seed=3, content_weight=0.0),
        "total": StyleConfig(size=48, steps=12, init="noise", seed=3),
    }
    for term, config in runs.items():
        result = stylize(content, style, config, features=features, progress=False)
        first, last = result.history[0], result.history[-1]
        measure = (lambda r: r["content"] + r["style"]) if term == "total" else (lambda r: r[term])
        assert measure(last) < 0.5 * measure(first), term
    assert result.image.shape == (3, 34, 48)  # the content's aspect ratio, longer side 48
    assert 0 <= float(result.image.min()) and float(result.image.max()) <= 1
    assert not result.pretrained


def test_from_content_style_loss_falls_with_adam_and_average_pooling(pictures):
    content, style = pictures
    config = StyleConfig(size=32, steps=10, optimizer="adam", learning_rate=0.05, pooling="avg")
    features = style_features(pooling="avg")
    assert any(isinstance(m, nn.AvgPool2d) for m in features.layers) and not any(isinstance(m, nn.MaxPool2d) for m in features.layers)
    result = stylize(content, style, config, features=features, progress=False)
    assert result.history[0]["content"] == 0.0
    assert result.history[-1]["style"] < result.history[0]["style"]


def test_seeded_runs_are_identical_and_coarse_to_fine_visits_each_scale(features, pictures):
    content, style = pictures
    config = StyleConfig(size=64, steps=4, scales=2, coarse_steps=3, init="noise", seed=7)
    first = stylize(content, style, config, features=features, progress=False)
    second = stylize(content, style, config, features=features, progress=False)
    assert torch.equal(first.image, second.image)
    sizes = [tuple(step["size"]) for step in first.history]
    assert sizes == [(23, 32)] * 3 + [(46, 64)] * 4


def test_callback_sees_every_step_and_can_stop(features, pictures):
    content, style = pictures
    seen = []
    result = stylize(content, style, StyleConfig(size=32, steps=20), features=features, progress=False,
                     callback=lambda step: seen.append(step.step) or step.step == 3)
    assert seen == [1, 2, 3] and len(result.history) == 3


def test_preserve_color_keeps_the_content_chrominance(features, pictures):
    content, style = pictures
    result = stylize(content, style, StyleConfig(size=32, steps=5, preserve_color=True), features=features, progress=False)
    from cnnkit.style import resize_to

    reference = rgb_to_yiq(resize_to(content, 32))[1:]
    inside = (resize_to(content, 32).amin(0) > 0.1) & (resize_to(content, 32).amax(0) < 0.9)  # away from clipping
    assert torch.allclose(rgb_to_yiq(result.image)[1:][:, inside], reference[:, inside], atol=0.03)


def test_bad_settings_are_refused_by_name(features, pictures):
    content, style = pictures
    for config, message in [
        (StyleConfig(size=8), "at least 16"), (StyleConfig(size=64, scales=4), "fewer scales"),
        (StyleConfig(optimizer="sgd"), "optimizer"), (StyleConfig(init="zeros"), "init"),
    ]:
        with pytest.raises(ValueError, match=message):
            stylize(content, style, config, features=features)
    with pytest.raises(ValueError, match="RGB"):
        stylize(content[:1], style, StyleConfig(size=32), features=features)
    with pytest.raises(ValueError, match="unknown VGG layer"):
        style_features(names=("relu9_9",))


def test_a_weights_file_for_another_network_is_refused(tmp_path):
    from cnnkit.models import create_model
    from cnnkit.models.weights import save_weights

    path = save_weights(create_model("resnet20"), tmp_path / "resnet20.safetensors")
    with pytest.raises(ValueError):
        style_features(weights=path)


def test_bfloat16_reaches_the_float32_loss_within_a_few_percent(features, pictures):
    """Judged in float32 on the result: bfloat16 VGG-19 (float32 Grams and losses) optimises the same objective."""
    from cnnkit.style import resize_to
    from cnnkit.style.transfer import CONTENT_LAYER, STYLE_LAYERS, responses_at

    content, style = pictures
    bf16 = responses_at(features, resize_to(content, 48)[None], "bfloat16")
    fp32 = responses_at(features, resize_to(content, 48)[None], "float32")
    for name in STYLE_LAYERS:
        assert bf16[name].dtype == torch.float32
        error = torch.linalg.norm(gram_matrix(bf16[name]) - gram_matrix(fp32[name])) / torch.linalg.norm(gram_matrix(fp32[name]))
        assert error < 0.02, (name, float(error))

    def float32_total(image):
        responses = responses_at(features, image[None], "float32")
        content_target = responses_at(features, resize_to(content, 48)[None], "float32")[CONTENT_LAYER]
        style_targets = {name: gram_matrix(r) for name, r in responses_at(features, resize_to(style, 48)[None], "float32").items()}
        grams = {name: gram_matrix(responses[name]) for name in STYLE_LAYERS}
        return float(content_loss(responses[CONTENT_LAYER], content_target) + 1e6 * style_loss(grams, style_targets, dict.fromkeys(STYLE_LAYERS, 1.0)))

    totals = {}
    for precision in ("float32", "bfloat16"):
        config = StyleConfig(size=48, steps=15, init="noise", seed=3, precision=precision)
        result = stylize(content, style, config, features=features, progress=False)
        totals[precision] = float32_total(result.image)
    start = float32_total(torch.rand(3, 34, 48, generator=torch.Generator().manual_seed(3)))
    assert totals["bfloat16"] < 0.1 * start
    assert totals["bfloat16"] <= 1.05 * totals["float32"], totals


def test_precision_is_checked_and_defaults_to_what_the_cpu_runs_natively(features, pictures):
    from cnnkit.style.transfer import PRECISIONS, native_precision

    assert StyleConfig().precision == native_precision() in PRECISIONS
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert native_precision() == "float32"
    content, style = pictures
    with pytest.raises(ValueError, match="precision must be 'float32' or 'bfloat16', got 'float16'"):
        stylize(content, style, StyleConfig(size=32, precision="float16"), features=features)
