"""Stage 4: what stage 2's network learned. The first layer's kernels and what they do to a digit,
the second layer's feature maps, Zeiler & Fergus's deconvnet projections of the strongest pool2
activations and the digits that excite one channel most, and where the decision comes from
(occlusion sensitivity and Grad-CAM)."""

from __future__ import annotations

import torch

from cnnkit import explain
from cnnkit.data import ImageSet, load_dataset, save_image
from cnnkit.figures import pyplot
from cnnkit.models import extract_features
from cnnkit.tour.network import trained_network
from cnnkit.tour.section import Section, TourContext
from cnnkit.train import load_trained

OCCLUDER = 7  # side of the occluding square in pixels, a quarter of the 28-pixel digit
INK = 0.5  # a pixel brighter than this is part of a stroke


def run(section: Section, context: TourContext) -> None:
    run_dir = trained_network(context)
    trained = load_trained(run_dir)
    model = trained.model.eval()
    mean, std = trained.mean[0], trained.std[0]
    dataset = load_dataset("digits")
    pictures, labels = dataset.test.batch(torch.arange(len(dataset.test)))  # (N, 1, 28, 28) in [0, 1], (N,)
    inputs = (pictures - mean) / std  # (N, 1, 28, 28) as the network sees them
    shown = [int((labels == digit).nonzero()[0]) for digit in ((0, 2, 4, 7) if context.quick else (0, 1, 2, 4, 7, 9))]
    digits = pictures[shown, 0]  # (D, 28, 28)

    _first_layer(section, model, inputs, digits[0], inputs[shown[0]:shown[0] + 1])
    _second_layer(section, model, inputs, shown, labels, digits)
    _deconvnet(section, model, inputs, shown, digits)
    collection = dataset.test if context.quick else _all_digits(dataset)
    _top_patches(section, model, collection, (mean, std), "test" if context.quick else "scikit-learn")
    _occlusion(section, model, inputs[shown], digits, labels[shown], (0.0 - mean) / std)

    digit_file = context.out_dir / "inputs" / f"digit-{int(labels[shown[0]])}.png"
    save_image(digits[0], digit_file)
    network, digit = run_dir.relative_to(context.out_dir), digit_file.relative_to(context.out_dir)
    section.command(f"cnnkit visualize filters {network} -o visualize")
    section.command(f"cnnkit visualize maps {network} {digit} --layer conv2 --count 16 -o visualize")
    section.command(f"cnnkit visualize deconv {network} {digit} --layer pool2 --count 4 -o visualize")
    section.command(f"cnnkit visualize occlusion {network} {digit} --size {OCCLUDER} --stride 1 -o visualize")
    section.command(f"cnnkit visualize occlusion {network} {digit} --size {OCCLUDER} --stride 1 --fill 0 -o visualize-black")
    section.command(f"cnnkit visualize gradcam {network} {digit} --layer conv2 -o visualize")


def _first_layer(section: Section, model, inputs, digit, x) -> None:
    """conv1's kernels, their maps for one digit ``x`` (1, 1, 28, 28), and their statistics over ``inputs``."""
    _, kernels = explain.conv_weights(model, "conv1.0")  # (6, 1, 5, 5)
    _, maps = explain.feature_maps(model, x, "conv1")  # (6, 28, 28) after the ReLU
    _filters_figure(kernels, digit, maps, section.figure(
        "filters", "conv1's six 5×5 kernels (red positive, blue negative) and each one's response to a test digit"))
    total = kernels.sum((1, 2, 3))  # (6,): Σw
    balance = total.abs() / kernels.abs().sum((1, 2, 3))  # (6,): |Σw| / Σ|w|, 0 when the weights cancel
    with torch.no_grad():
        responses = extract_features(model, inputs, ["conv1"])["conv1"]  # (N, 6, 28, 28) after the ReLU
    section.table(
        f"conv1's kernels: their weights, and their responses (after the ReLU) over the {len(inputs)} test digits",
        ["kernel", "Σw", "Σ|w|", "|Σw| / Σ|w|", "mean response", "pixels responding"],
        [[f"kernel {k}", f"{float(total[k]):+.2f}", f"{float(kernels[k].abs().sum()):.2f}", f"{float(balance[k]):.2f}",
          f"{float(responses[:, k].mean()):.3f}", f"{float((responses[:, k] > 0).float().mean()):.0%}"] for k in range(len(kernels))],
    )
    edges, dark, bright = int((balance < 0.5).sum()), int(((balance >= 0.5) & (total < 0)).sum()), int(((balance >= 0.5) & (total > 0)).sum())
    section.say(
        "Only the first layer's kernels act on pixels, so only they can be looked at directly. Stage 2's network learned six "
        f"5×5 kernels for `conv1`. In {edges} of them positive and negative weights largely cancel (|Σw| / Σ|w| below 0.5): "
        "they answer to changes of brightness, the edges of strokes, rather than to brightness itself. "
        + _census(dark, "mostly negative, which after the ReLU means a response to the dark background around the strokes")
        + _census(bright, "mostly positive, which means a response to the ink itself")
        + "Each feature map is one kernel's response at every position: bright where the "
        "kernel's pattern is found, zero (black) where it is not."
    )
    section.metrics.update(kernels_edge_like=edges, kernels_dark=dark, kernels_bright=bright)


def _second_layer(section: Section, model, inputs, shown: list[int], labels, digits) -> None:
    """conv2's 16 maps for the digits ``shown``, and the channel each excites most relative to its usual peak."""
    with torch.no_grad():
        maps = extract_features(model, inputs, ["conv2"])["conv2"]  # (N, 16, 10, 10) after the ReLU
    _maps_figure(digits, maps[shown], labels[shown],
                 section.figure("maps", "conv2's 16 feature maps (10×10, after the ReLU) for test digits of different classes"))
    peaks = maps.flatten(2).amax(2)  # (N, 16): each channel's strongest response per digit
    excess = peaks / peaks.mean(0).clamp_min(1e-6)  # (N, 16): relative to the channel's average peak
    favourite = excess[shown].argmax(1)  # (D,)
    section.say(
        "The second convolution combines the six maps into 16, each 10×10; a unit there sees 14×14 pixels of the digit. "
        "Measured against its average peak over all test digits, the channel each digit excites most is "
        + ", ".join(f"{int(c)} for the {int(labels[i])} ({float(excess[i, c]):.1f}× its average)" for i, c in zip(shown, favourite))
        + ". The classifier decides from these patterns, pooled to 16×5×5 numbers."
    )
    section.metrics["channels_favoured"] = len(set(favourite.tolist()))


def _deconvnet(section: Section, model, inputs, shown: list[int], digits) -> None:
    """Deconvnet projections of the four strongest pool2 activations of each digit shown."""
    projections = [[explain.deconvnet(model, inputs[i:i + 1], "pool2", channel, position)
                    for channel, position, _ in explain.strongest_activations(model, inputs[i:i + 1], "pool2", 4)] for i in shown]
    _deconv_figure(digits, projections, section.figure(
        "deconv", "Deconvnet: the four strongest pool2 activations of each digit projected back to pixels (red positive, blue negative; strokes outlined)"))
    boxes = [explain.support_box(p.image) for row in projections for p in row]
    support = max(max(bottom - top, right - left) for top, left, bottom, right in boxes)
    section.say(
        "To see what one activation of `pool2` responds to, Zeiler & Fergus's deconvnet sets every other activation to zero "
        "and sends the signal back down, each layer undone in reverse: unpooling puts each value back where the forward max "
        "pooling's switches found the maximum, rectification lets only positive signals through, and filtering applies the "
        f"convolution's transposed kernels. Each projection stays inside the unit's 18×18 receptive field (the largest "
        f"measured here spans {support} pixels) and shows which pixels of this digit drove the unit, and with which sign: "
        "where a dark background helped, the projection is negative."
    )
    section.metrics["deconv_support"] = support


def _top_patches(section: Section, model, collection: ImageSet, normalisation, which: str) -> None:
    """The pool2 channel whose strongest responses are most of one class, and its top digits."""
    mean, std = normalisation
    pictures, labels = collection.batch(torch.arange(len(collection)))  # (M, 1, 28, 28), (M,)
    inputs = (pictures - mean) / std
    with torch.no_grad():
        peaks = extract_features(model, inputs, ["pool2"])["pool2"].flatten(2).amax(2)  # (M, 16)
    k = 6 if which == "test" else 9
    top = labels[peaks.topk(k, dim=0).indices]  # (k, 16): classes of each channel's k strongest digits
    purity = torch.stack([top[:, c].bincount(minlength=10).max() for c in range(top.shape[1])])  # (16,)
    channel = int(purity.argmax())
    patches = explain.top_patches(model, inputs, "pool2", channel, k=k)
    explain.top_patches_figure(pictures, patches, section.figure(
        "top-patches", f"The {k} of the {len(collection)} {which} digits that excite pool2 channel {channel} most: "
        "the region that reaches the unit, and the deconvnet projection there"),
        f"pool2 channel {channel}: its {k} strongest responses among {len(collection)} digits")
    classes = [int(labels[p.index]) for p in patches]
    section.say(
        f"Turned around, the question is which inputs a channel prefers. Over the {len(collection)} {which} digits, the "
        f"{k} strongest responses of `pool2` channel {channel} come from digits of the classes {', '.join(map(str, classes))}: "
        f"{int(purity[channel])} of {k} from one class, the most single-minded of the 16 channels. Each is shown as the region "
        "that reaches the unit beside its projection, as in Zeiler & Fergus's Fig. 2."
    )
    section.metrics.update(top_patch_channel=channel, top_patch_purity=int(purity[channel]) / k)


def _occlusion(section: Section, model, inputs, digits, labels, black: float) -> None:
    """Occlusion with a grey (the mean: 0 after normalisation) and a black square, and Grad-CAM, for ``inputs`` (D, 1, 28, 28)."""
    grey_maps = [explain.occlusion_map(model, x[None], size=OCCLUDER, stride=1, batch_size=512) for x in inputs]
    black_maps = [explain.occlusion_map(model, x[None], size=OCCLUDER, stride=1, fill=black, batch_size=512) for x in inputs]
    cams = [explain.grad_cam(model, x[None], layer="conv2") for x in inputs]
    _attribution_figure(digits, grey_maps, black_maps, cams, section.figure(
        "occlusion", f"Where the decision comes from: p(class) with a {OCCLUDER}×{OCCLUDER} square centred on each pixel, "
        "grey (the paper's) or black (erasing ink), and Grad-CAM at conv2"))
    ink_area = float((digits > INK).float().mean())
    section.table(
        f"Occlusion with a {OCCLUDER}×{OCCLUDER} square (stride 1): p of the predicted class, at the worst place, and how much of "
        f"that place is ink; the share of Grad-CAM's mass on ink (ink is {ink_area:.0%} of the pixels)",
        ["digit", "predicted", "p", "p, worst grey", "ink under it", "p, worst black", "ink under it", "Grad-CAM on ink"],
        [[str(int(label)), str(g.target), f"{g.baseline:.3f}", f"{float(g.probability.min()):.3f}", f"{_ink_under_worst(g, digit):.0%}",
          f"{float(b.probability.min()):.3f}", f"{_ink_under_worst(b, digit):.0%}", f"{_ink_share(cam.heatmap, digit):.0%}"]
         for label, digit, g, b, cam in zip(labels, digits, grey_maps, black_maps, cams)],
    )
    grey_drop = sum(o.baseline - float(o.probability.min()) for o in grey_maps) / len(grey_maps)
    grey_ink = sum(_ink_under_worst(o, d) for o, d in zip(grey_maps, digits)) / len(digits)
    black_drop = sum(o.baseline - float(o.probability.min()) for o in black_maps) / len(black_maps)
    black_ink = sum(_ink_under_worst(o, d) for o, d in zip(black_maps, digits)) / len(digits)
    cam_ink = sum(_ink_share(c.heatmap, d) for c, d in zip(cams, digits)) / len(digits)
    grey_effect = ", and that hurts more than covering the ink" if grey_ink < 0.5 else ""
    where = ("concentrated on the strokes" if cam_ink > 1.5 * ink_area else
             "spread over the background as much as over the strokes (the black gaps between them count too)")
    section.say(
        f"Where in the image does the decision come from? Zeiler & Fergus slide a grey square over the image (§4.2) and watch "
        f"the class probability. Here a {OCCLUDER}×{OCCLUDER} square of the training set's mean grey costs the predicted class "
        f"{grey_drop:.2f} of probability on average at its worst place, a place that is {grey_ink:.0%} ink. On white strokes on "
        f"black, grey is not neutral: over the background it draws a faint new stroke{grey_effect}. A black square erases ink instead; "
        f"it costs {black_drop:.2f} on average, at places that are {black_ink:.0%} ink, and the red regions of its maps are the "
        "strokes that carry the class. Grad-CAM (Selvaraju et al. 2017) needs one backward pass instead of hundreds of forward "
        "passes: it weights conv2's maps by the mean gradient of the class score and keeps the positive part of the sum. "
        f"{cam_ink:.0%} of its mass lies on ink, which covers {ink_area:.0%} of the pixels, so its evidence is {where}."
    )
    section.metrics.update(occlusion_baseline=sum(o.baseline for o in grey_maps) / len(grey_maps), occlusion_grey_drop=grey_drop,
                           occlusion_grey_on_ink=grey_ink, occlusion_black_drop=black_drop, occlusion_black_on_ink=black_ink, gradcam_on_ink=cam_ink)


def _census(count: int, what: str) -> str:
    """'2 are <what>. ' (nothing for none)."""
    return "" if count == 0 else f"{'One is' if count == 1 else f'{count} are'} {what}. "


def _all_digits(dataset) -> ImageSet:
    """Train, validation and test digits together: all 1,797 of scikit-learn's."""
    parts = (dataset.train, dataset.val, dataset.test)
    return ImageSet(torch.cat([p.labels for p in parts]), images=torch.cat([p.images for p in parts]))


def _ink_share(heatmap: torch.Tensor, digit: torch.Tensor) -> float:
    """Share of Σ|heatmap| (H, W) on the digit's (H, W) ink pixels."""
    return float((heatmap.abs() * (digit > INK)).sum() / heatmap.abs().sum().clamp_min(1e-12))


def _ink_under_worst(occlusion, digit: torch.Tensor) -> float:
    """Share of ink pixels under the square that costs the class most."""
    flat = int(occlusion.probability.argmin())
    top, left = divmod(flat, occlusion.probability.shape[1])
    top, left = top * occlusion.stride, left * occlusion.stride
    return float((digit[top:top + occlusion.size, left:left + occlusion.size] > INK).float().mean())


def _blank(axes) -> None:
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])


def _filters_figure(kernels: torch.Tensor, digit: torch.Tensor, maps: torch.Tensor, path) -> None:
    """Top: the kernels (K, 1, k, k) on a symmetric red-blue scale; bottom: the digit (H, W) and each kernel's map (K, H, W)."""
    plt = pyplot()
    count = len(kernels)
    figure, axes = plt.subplots(2, count + 1, figsize=(1.35 * (count + 1), 3.3), layout="constrained")
    _blank(axes)
    axes[0, 0].set_axis_off()
    axes[0, 0].text(0.5, 0.5, "kernels\n5×5", ha="center", va="center", fontsize=10)
    axes[1, 0].imshow(digit.numpy(), cmap="gray", vmin=0, vmax=1)
    axes[1, 0].set_title("test digit", fontsize=8)
    for k in range(count):
        peak = float(kernels[k].abs().max())
        axes[0, k + 1].imshow(kernels[k, 0].numpy(), cmap="RdBu_r", vmin=-peak, vmax=peak)
        axes[0, k + 1].set_title(f"kernel {k}\nΣw = {float(kernels[k].sum()):+.2f}", fontsize=8)
        axes[1, k + 1].imshow(maps[k].numpy(), cmap="gray", vmin=0)
        axes[1, k + 1].set_title(f"map {k}, max {float(maps[k].max()):.1f}", fontsize=8)
    figure.suptitle("conv1: what the network learned to look for, and where it finds it", fontsize=10)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _maps_figure(digits: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor, path) -> None:
    """One row per digit (D, H, W): the digit, then its C maps (D, C, h, w), each on its own scale."""
    plt = pyplot()
    rows, channels = maps.shape[:2]
    figure, axes = plt.subplots(rows, channels + 1, figsize=(0.57 * (channels + 1), 0.62 * rows + 0.5), layout="constrained")
    _blank(axes)
    for r in range(rows):
        axes[r, 0].imshow(digits[r].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(f"{int(labels[r])}", rotation=0, labelpad=8)
        for c in range(channels):
            axes[r, c + 1].imshow(maps[r, c].numpy(), cmap="viridis", vmin=0, vmax=max(float(maps[r, c].max()), 1e-6))
            if r == 0:
                axes[r, c + 1].set_title(f"ch {c}", fontsize=7)
    figure.suptitle("conv2's 16 channels for digits of different classes (each map on its own scale, dark = 0)", fontsize=9)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _deconv_figure(digits: torch.Tensor, projections: list[list], path) -> None:
    """One row per digit (D, H, W): the digit, then its projections (red positive, blue negative) with the strokes outlined."""
    plt = pyplot()
    rows, columns = len(projections), max(len(row) for row in projections)
    figure, axes = plt.subplots(rows, columns + 1, figsize=(1.25 * (columns + 1), 1.3 * rows + 0.4), layout="constrained")
    _blank(axes)
    for r, row in enumerate(projections):
        axes[r, 0].imshow(digits[r].numpy(), cmap="gray", vmin=0, vmax=1)
        for c, projection in enumerate(row):
            image = projection.image[0]  # (28, 28)
            peak = float(image.abs().max()) or 1.0
            axes[r, c + 1].imshow(image.numpy(), cmap="RdBu_r", vmin=-peak, vmax=peak)
            axes[r, c + 1].contour(digits[r].numpy(), levels=[INK], colors="black", linewidths=0.5)
            axes[r, c + 1].set_title(f"ch {projection.channel} at {projection.position}", fontsize=7)
    figure.suptitle("pool2's strongest activations, projected to pixels by the deconvnet", fontsize=9)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _occlusion_panel(axis, occlusion, digit: torch.Tensor, what: str):
    """p(target) under occlusion, each value drawn at its square's centre, with the strokes outlined."""
    rows, columns = occlusion.probability.shape
    centre, half_step = (occlusion.size - 1) / 2, occlusion.stride / 2
    extent = (centre - half_step, centre + (columns - 1) * occlusion.stride + half_step,
              centre + (rows - 1) * occlusion.stride + half_step, centre - half_step)
    shown = axis.imshow(occlusion.probability.numpy(), cmap="RdYlGn", vmin=0, vmax=1, extent=extent)
    axis.contour(digit.numpy(), levels=[INK], colors="black", linewidths=0.8)
    axis.set_xlim(-0.5, digit.shape[1] - 0.5)
    axis.set_ylim(digit.shape[0] - 0.5, -0.5)
    axis.set_title(f"{what}: min {float(occlusion.probability.min()):.2f}", fontsize=8)
    return shown


def _attribution_figure(digits: torch.Tensor, grey: list, black: list, cams: list, path) -> None:
    """One row per digit (D, H, W): the digit, p(class) under a grey and a black square, Grad-CAM over the digit."""
    plt = pyplot()
    rows = len(digits)
    figure, axes = plt.subplots(rows, 4, figsize=(7.6, 1.75 * rows + 0.5), layout="constrained", squeeze=False)
    _blank(axes)
    for r in range(rows):
        axes[r, 0].imshow(digits[r].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"predicted {grey[r].target}, p = {grey[r].baseline:.2f}", fontsize=8)
        _occlusion_panel(axes[r, 1], grey[r], digits[r], "grey square")
        shown = _occlusion_panel(axes[r, 2], black[r], digits[r], "black square")
        axes[r, 3].imshow(digits[r].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[r, 3].imshow(cams[r].heatmap.numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes[r, 3].set_title(f"Grad-CAM for {cams[r].target}", fontsize=8)
    figure.colorbar(shown, ax=axes[:, 1:3], shrink=0.6, label="p(predicted class) with the square there")
    figure.suptitle("occlusion sensitivity (strokes outlined) and Grad-CAM", fontsize=9)
    figure.savefig(path, dpi=100)
    plt.close(figure)
