"""Stage 1: the operation. A real photo through classic kernels; how stride, padding and dilation
set the output size; max, average and L2 pooling; the convolution as a sparse matrix (sparse
connectivity, parameter sharing); translation equivariance measured."""

from __future__ import annotations

import torch

from cnnkit.data import sample_image
from cnnkit.figures import pyplot
from cnnkit.ops import (
    connectivity,
    convolution_matrix,
    cross_correlation,
    edge_magnitude,
    equivariance_error,
    invariance_error,
    kernel,
    l2_pool,
    max_pool,
    output_size,
    avg_pool,
    shift,
)
from cnnkit.ops.filters import filter_image
from cnnkit.tour.section import Section, TourContext

FILTERS = (("sobel-x", {}), ("sobel-y", {}), ("gaussian", {"sigma": 2.0}), ("laplacian", {}), ("sharpen", {}))


def run(section: Section, context: TourContext) -> None:
    photo = sample_image("camera")  # (1, 512, 512) in [0, 1]
    section.say(
        "A convolution layer slides a small kernel over the image and, at every position, sums the "
        "products of the kernel's weights with the pixels under it: out(i, j) = Σ_u Σ_v x(i+u, j+v)·k(u, v) "
        "(the cross-correlation that layers compute; the mathematical convolution flips the kernel first). "
        "Classic hand-made kernels find edges, blur or sharpen; a CNN learns its kernels instead."
    )
    _filters_figure(photo, section.figure("filters", "scikit-image's camera photo (512×512) through classic 3×3 and 13×13 kernels"))

    sizes = []
    for k, s, p, d in ((3, 1, 0, 1), (3, 1, 1, 1), (5, 2, 2, 1), (3, 2, 0, 1), (3, 1, 2, 2), (11, 4, 2, 1)):
        formula = output_size(512, k, s, p, d)
        measured = cross_correlation(photo[None], torch.ones(1, 1, k, k), stride=s, padding=p, dilation=d).shape[-1]
        sizes.append([f"{k}×{k}", s, p, d, formula, measured])
    section.table("Output width of a 512-pixel-wide input: the formula ⌊(n + 2p − d(K−1) − 1)/s⌋ + 1 and the size measured",
                  ["kernel K", "stride s", "padding p", "dilation d", "formula", "measured"], sizes)
    section.metrics["output_sizes_agree"] = all(row[4] == row[5] for row in sizes)

    section.say(
        "Pooling summarises each window: max pooling keeps the strongest response, average pooling the mean, "
        "L2 pooling the root of the sum of squares. A 2×2 window with stride 2 halves each side."
    )
    _pooling_figure(photo, section.figure("pooling", "2×2 pooling with stride 2 of a 64×64 crop (the eye and the camera)"))

    small = torch.arange(1.0, 10.0).view(3, 3)  # nine distinct weights
    matrix = convolution_matrix(small, (6, 6), padding=1)  # (36, 36) sparse
    nonzero = matrix.coalesce().values().count_nonzero().item()
    section.say(
        f"Written as a matrix acting on the flattened image, the convolution is {nonzero} non-zeros out of "
        f"{matrix.shape[0] * matrix.shape[1]} entries (sparse connectivity: each output sees 3×3 inputs), and "
        "those non-zeros are the same 9 numbers repeated on every row (parameter sharing)."
    )
    _matrix_figure(matrix, section.figure("matrix", "A 3×3 kernel on a 6×6 image (padding 1) as a 36×36 matrix: every row is the kernel, shifted"))
    layers = [("3×3, 3→64 at 224×224 (VGG conv1_1)", torch.ones(64, 3, 3, 3), (224, 224)),
              ("3×3, 64→64 at 56×56 (ResNet conv2)", torch.ones(64, 64, 3, 3), (56, 56)),
              ("5×5, 1→6 at 28×28 (stage 2's conv1)", torch.ones(6, 1, 5, 5), (28, 28))]
    rows = []
    for name, weights, size in layers:
        counts = connectivity(weights, size, padding=weights.shape[-1] // 2)
        rows.append([name, f"{counts.dense_connections:.3g}", f"{counts.connections:.3g}", f"{counts.sparsity:.4%}",
                     f"{counts.parameters:,}", f"{counts.uses_per_parameter:,.0f}"])
    section.table("Sparse connectivity and parameter sharing: a fully connected layer between the same input and output "
                  "would need the dense count of weights", ["layer", "dense weights", "connections", "sparsity",
                  "parameters", "uses per parameter"], rows)

    torch.manual_seed(context.seed)
    layer = torch.nn.Conv2d(1, 8, 5, padding=2, padding_mode="circular")
    strided = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, stride=2, padding=1, padding_mode="circular"), torch.nn.ReLU())
    pooled = torch.nn.Sequential(layer, torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(1))
    image = photo[None, :, ::2, ::2]  # (1, 1, 256, 256)
    errors = [
        ["conv 5×5, shift (13, 29)", "equivariance", equivariance_error(layer, image, (13, 29))],
        ["conv 3×3 stride 2 + ReLU, shift (14, 30)", "equivariance", equivariance_error(strided, image, (14, 30))],
        ["conv 3×3 stride 2, shift (1, 0)", "change (half a pixel of output: no whole shift matches)", _odd_shift_error(strided, image)],
        ["conv + ReLU + global max pool, shift (13, 29)", "invariance", invariance_error(pooled, image, (13, 29))],
    ]
    section.say(
        f"Shifting the input shifts a convolution's output by the same amount: the relative error is "
        f"{errors[0][2]:.1g} (rounding at most). With stride 2 this holds only for even shifts; a one-pixel shift "
        f"changes the output by {errors[2][2]:.0%}. Global max pooling on top makes the response invariant to the "
        f"shift (error {errors[3][2]:.1g})."
    )
    section.table("Translation equivariance measured: ‖f(shift(x)) − shift(f(x))‖ / ‖f(x)‖ (equivariance) and "
                  "‖f(shift(x)) − f(x)‖ / ‖f(x)‖ (invariance) on the camera photo, random kernels, circular padding",
                  ["layer and shift", "measures", "relative error"], [[a, b, f"{e:.1e}"] for a, b, e in errors])
    section.metrics.update(equivariance_error=errors[0][2], odd_shift_error=errors[2][2], invariance_error=errors[3][2],
                           matrix_nonzeros=nonzero)
    section.command("cnnkit convolve --sample camera --kernel sobel-x -o sobel.png")
    section.command("cnnkit convolve --sample camera --kernel gaussian --sigma 2 --stride 2 -o blurred.png")
    section.command("cnnkit pool --kind l2 --size 2 --stride 2 -o pooled.png")
    section.command("cnnkit shape 'conv 11x11x96 s4 p2 | pool max 3 s2' --input 3x224x224")


def _odd_shift_error(layer, image) -> float:
    """How far a stride-2 layer is from equivariant for a one-pixel shift: compare with the unshifted output."""
    with torch.no_grad():
        y = layer(image)
        return float(torch.linalg.vector_norm(layer(shift(image, (1, 0))) - y) / torch.linalg.vector_norm(y))


def _filters_figure(photo, path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(12, 8.4), layout="constrained")
    panels = [("input", photo, None)]
    for name, options in FILTERS:
        k = kernel(name, **options)
        panels.append((f"{name} {k.shape[0]}×{k.shape[1]}", filter_image(photo, k), k))
    panels[-1] = ("Sobel edge magnitude √(g_x² + g_y²)", edge_magnitude(photo), None)
    for axis, (title, image, k) in zip(axes.flat, panels):
        signed = image.min() < 0
        scale = float(image.abs().max()) if signed else 1.0
        axis.imshow(image[0].numpy(), cmap="gray" if not signed else "RdBu_r", vmin=-scale if signed else 0, vmax=scale)
        axis.set_title(title)
        axis.axis("off")
        if k is not None:
            inset = axis.inset_axes((0.0, 0.0, 0.25, 0.25))
            peak = float(k.abs().max())
            inset.imshow(k.numpy(), cmap="RdBu_r", vmin=-peak, vmax=peak)
            inset.set_xticks([])
            inset.set_yticks([])
    figure.suptitle("classic kernels (inset, red positive, blue negative) and their outputs")
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _pooling_figure(photo, path) -> None:
    plt = pyplot()
    crop = photo[None, :, 96:160, 224:288]  # (1, 1, 64, 64)
    panels = [("input 64×64", crop), ("max pool → 32×32", max_pool(crop, 2)), ("average pool → 32×32", avg_pool(crop, 2)),
              ("L2 pool / 2 → 32×32", l2_pool(crop, 2) / 2)]
    figure, axes = plt.subplots(1, 4, figsize=(13, 3.8), layout="constrained")
    for axis, (title, image) in zip(axes, panels):
        axis.imshow(image[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axis.set_title(title)
        axis.axis("off")
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _matrix_figure(matrix, path) -> None:
    plt = pyplot()
    dense = matrix.to_dense()
    figure, axis = plt.subplots(figsize=(7.5, 7), layout="constrained")
    shown = axis.imshow(dense.masked_fill(dense == 0, float("nan")).numpy(), cmap="viridis")
    figure.colorbar(shown, ax=axis, label="kernel weight k(u, v)", shrink=0.8)
    axis.set_xlabel("input pixel (row-major, 6×6 = 36)")
    axis.set_ylabel("output pixel (row-major)")
    nonzero = int((dense != 0).sum())
    axis.set_title(f"the convolution as a matrix: {nonzero} non-zeros of {dense.numel()}, {dense[dense != 0].unique().numel()} distinct values")
    figure.savefig(path, dpi=80)
    plt.close(figure)
