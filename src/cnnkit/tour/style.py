"""Stage 8: neural style transfer (Gatys, Ecker & Bethge 2016) of a photo in a painting's style:
the three images side by side, the image as the optimisation goes, the content and style losses
per step, and the Gram matrices that the style loss compares."""

from __future__ import annotations

import torch

from cnnkit.figures import pyplot
from cnnkit.style import STYLE_LAYERS, WEIGHTS_HINT, StyleConfig, gram_matrix, resize_to, style_features, stylize
from cnnkit.style.samples import sample_pair
from cnnkit.tour.section import Section, TourContext

SNAPSHOTS = 5  # images shown along the optimisation, the last one the result


def run(section: Section, context: TourContext) -> None:
    content, content_name, style, style_name = sample_pair()  # (3, H, W) and (3, H', W') in [0, 1]
    config = (StyleConfig(size=96, steps=20, scales=1, seed=context.seed) if context.quick
              else StyleConfig(size=256, steps=30, scales=2, seed=context.seed))
    features = style_features(context.vgg19_weights, (config.content_layer, *config.style_layers), config.pooling, config.seed)
    snapshots = {}  # step → (3, h, w)
    total = config.steps * config.scales
    keep = {1, *(round(total * i / (SNAPSHOTS - 1)) for i in range(1, SNAPSHOTS - 1))}

    def snapshot(step) -> None:
        if len(snapshots) < len(keep) and step.step + config.steps * step.scale in keep:
            snapshots[step.step + config.steps * step.scale] = step.image.clone()

    result = stylize(content, style, config, features=features, progress=False, callback=snapshot)
    image = result.image  # (3, h, w) in [0, 1]
    snapshots[len(result.history)] = image
    shown_content = resize_to(content, max(image.shape[-2:]))
    shown_style = resize_to(style, max(image.shape[-2:]))
    names = (content_name, style_name)
    _pair_figure(shown_content, shown_style, image, names, section.figure(
        "result", f"The photo ({_short(content_name)}), the painting ({_short(style_name)}) and the result, {image.shape[-1]}×{image.shape[-2]} pixels"))
    _snapshots_figure(snapshots, section.figure("progress", "The image during the optimisation, from the photo itself to the result"))
    history = result.history
    _losses_figure(history, config, section.figure("losses", "α·L_content and β·L_style at every step (log scale)"))

    with torch.no_grad():
        responses = {name: features(picture[None]) for name, picture in
                     (("content", shown_content), ("style", shown_style), ("result", image))}
    grams = {name: {layer: gram_matrix(r[layer])[0] for layer in STYLE_LAYERS} for name, r in responses.items()}  # (C, C) each
    _gram_figure(grams, section.figure("gram", "Gram matrices at relu1_1 (64×64 channel correlations): the result's moves from the photo's towards the painting's"))
    distances = [[layer, _distance(grams["content"][layer], grams["style"][layer]), _distance(grams["result"][layer], grams["style"][layer])]
                 for layer in STYLE_LAYERS]
    section.table(
        "How far each Gram matrix is from the painting's: ‖G − A‖ / ‖A‖ for the photo and for the result",
        ["layer", "photo", "result", "result / photo"],
        [[layer, f"{before:.3f}", f"{after:.3f}", f"{after / before:.2f}"] for layer, before, after in distances],
    )

    first, last = history[0], history[-1]
    style_first = next(h["style"] for h in history if h["scale"] == last["scale"])  # at the final scale's first step
    ratios = [after / before for _, before, after in distances]
    section.say(
        "Gatys, Ecker & Bethge separate what an image shows from how it is painted, both read off VGG-19's responses. The "
        "content is the response at one deep layer, `relu4_2`: where things are. The style is the Gram matrix G = F Fᵀ / (C·H·W) "
        "of each of `relu1_1` … `relu5_1`: which channels fire together, wherever they fire, a statistic of textures that "
        "forgets the layout. The result is an image optimised pixel by pixel, starting from the photo, to minimise "
        "α·L_content + β·L_style, with L-BFGS as in the paper."
    )
    section.say(
        f"{_short(content_name)} in the style of {_short(style_name)}, {image.shape[-1]}×{image.shape[-2]} pixels, "
        f"{len(history)} steps in {result.seconds:.1f} s. Starting from the photo the content loss is {first['content']:.2g} and the "
        f"style loss {first['style']:.3g}; after the last step they are {last['content']:.3g} and {last['style']:.3g}: the style "
        f"loss fell {style_first / max(last['style'], 1e-12):.0f}-fold at the final scale while the content loss rose from zero, the "
        "trade-off that α/β sets. "
        + (f"At every style layer the result's Gram matrix is nearer the painting's than the photo's was ({min(ratios):.2f}–"
           f"{max(ratios):.2f} of the photo's distance, table below)." if max(ratios) < 1 else
           f"The result's Gram matrices are {min(ratios):.2f}–{max(ratios):.2f} times as far from the painting's as the photo's (table below).")
    )
    if features.pretrained:
        section.say(f"VGG-19 here carries ImageNet weights from `{context.vgg19_weights}`, as in the paper.")
    else:
        section.say(
            "These features are random: no VGG-19 weights file was given, so the Gram matrices measure statistics of untrained "
            "filters and the result is a texture-like blend of the two images, not a painting. The losses fall all the same; "
            f"only the features lack meaning. {WEIGHTS_HINT[0].upper()}{WEIGHTS_HINT[1:]}; the tour takes it as "
            "`cnnkit tour --stages 8 --weights vgg19-dcbb9e9d.pth`."
        )

    section.metrics.update(
        pretrained=features.pretrained, size=list(image.shape[-2:]), steps=len(history), seconds=result.seconds,
        content_loss=last["content"], style_loss_first=style_first, style_loss=last["style"],
        gram_ratio_max=max(ratios), gram_ratio_min=min(ratios),
    )
    weights = f" --weights {context.vgg19_weights}" if context.vgg19_weights else ""
    section.command(f"cnnkit stylize --size {config.size} --steps {config.steps} --scales {config.scales} "
                    f"--seed {config.seed}{weights} -o stylized.png")


def _short(name: str) -> str:
    """'sample:astronaut' → 'astronaut'; a path → its file name."""
    return name.split(":", 1)[1] if name.startswith("sample:") else name.replace("\\", "/").rsplit("/", 1)[-1]


def _distance(gram: torch.Tensor, target: torch.Tensor) -> float:
    """‖G − A‖_F / ‖A‖_F."""
    return float((gram - target).norm() / target.norm().clamp_min(1e-12))


def _picture(image: torch.Tensor):
    return image.permute(1, 2, 0).clamp(0, 1).numpy()


def _pair_figure(content: torch.Tensor, style: torch.Tensor, result: torch.Tensor, names: tuple[str, str], path) -> None:
    """Content, style and result (3, H, W) side by side."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(10, 3.1), layout="constrained")
    for axis, image, title in zip(axes, (content, style, result), (f"content: {_short(names[0])}", f"style: {_short(names[1])}", "result")):
        axis.imshow(_picture(image))
        axis.set_title(title, fontsize=10)
        axis.set_axis_off()
    figure.suptitle("neural style transfer (Gatys et al. 2016)", fontsize=11)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _snapshots_figure(snapshots: dict[int, torch.Tensor], path) -> None:
    """The image (3, h, w) at a few steps, in order."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(snapshots), figsize=(2 * len(snapshots), 1.9), layout="constrained", squeeze=False)
    for axis, (step, image) in zip(axes[0], sorted(snapshots.items())):
        axis.imshow(_picture(image))
        axis.set_title(f"step {step} ({image.shape[-1]}×{image.shape[-2]})", fontsize=9)
        axis.set_axis_off()
    figure.suptitle("the optimised image along the way", fontsize=10)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _losses_figure(history: list[dict], config: StyleConfig, path) -> None:
    """α·L_content and β·L_style per step, the scales separated by dotted lines."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.4), layout="constrained")
    for term, weight in (("content", f"α = {config.content_weight:g}"), ("style", f"β = {config.style_weight:g}")):
        points = [(step, h[term]) for step, h in enumerate(history, start=1) if h[term] > 0]  # 0 at the start cannot be drawn
        axis.semilogy([p[0] for p in points], [p[1] for p in points], label=f"{term}, {weight}")
    for index in range(1, len(history)):
        if history[index]["scale"] != history[index - 1]["scale"]:
            axis.axvline(index + 0.5, color="grey", linestyle=":")
            axis.text(index + 1, axis.get_ylim()[1], f" {history[index]['size'][1]} px", va="top", fontsize=8, color="grey")
    axis.set_xlabel("step (L-BFGS function evaluation)")
    axis.set_ylabel("weighted loss")
    axis.set_title("content and style losses")
    axis.legend()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _gram_figure(grams: dict[str, dict[str, torch.Tensor]], path) -> None:
    """The relu1_1 Gram matrices (C, C) of photo, painting and result on one colour scale."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(9, 3.2), layout="constrained")
    layer = STYLE_LAYERS[0]
    peak = max(float(g[layer].max()) for g in grams.values())
    for axis, (name, title) in zip(axes, (("content", "photo"), ("style", "painting"), ("result", "result"))):
        shown = axis.imshow(grams[name][layer].numpy(), cmap="magma", vmin=0, vmax=peak)
        axis.set_title(f"{title}: G at {layer}", fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(shown, ax=axes, shrink=0.8)
    figure.suptitle("which channels fire together: Gram matrices of the photo, the painting and the result", fontsize=10)
    figure.savefig(path, dpi=100)
    plt.close(figure)
