"""Stage 5: transfer learning. Stage 2's digit network is the pretrained source; two targets are
chosen to sit in different cells of the lecture's table (small/large × similar/different):

    digit parity   the same kind of images, a new question (even or odd), the built-in splits kept
    faces          scikit-image's face / non-face patches: other images, 140 for training

For each target the advisor (`cnnkit.transfer.advise`) reads the table from the data, and each
strategy is measured: a logistic regression on the classifier's input (linear) or on the
probe's best layer (intermediate), fine-tuning the top layers or every layer, and the same
network trained from scratch on the target alone for as many epochs as fine-tuning gets.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter
from PIL import Image

from cnnkit.data import Dataset, load_dataset
from cnnkit.figures import pyplot
from cnnkit.tour.network import trained_network
from cnnkit.tour.section import Section, TourContext
from cnnkit.train import TrainConfig, train
from cnnkit.transfer import HEAD_INPUT, Advice, FineTuneTask, advise, load_pretrained, transfer
from cnnkit.transfer.finetune import default_top_blocks
from cnnkit.transfer.strategies import default_config

STRATEGIES = ("linear", "intermediate", "finetune-top", "finetune-all", "scratch")
"""The compared strategies: the lecture's four, then no transfer at all."""
STRATEGY_LABELS = {
    "linear": f"linear (logistic regression on {HEAD_INPUT})",
    "intermediate": "intermediate (on the probe's best layer)",
    "finetune-all": "finetune-all (every layer, a new head)",
    "scratch": "from scratch (no transfer)",
}


@dataclass
class TargetRun:
    """One target: where its data is, and what the advisor and each strategy made of it."""

    key: str  # metrics prefix
    name: str  # shown on the page
    data: str  # what `--data` takes: a built-in name or a folder
    augmentation: str | None  # None: the dataset's recommendation
    advice: Advice | None = None
    test_top1: dict[str, float] = field(default_factory=dict)  # strategy → test top-1
    seconds: dict[str, float] = field(default_factory=dict)  # strategy → wall seconds
    val_count: int = 0  # the resolution of the probe: one image is 1/val_count
    test_count: int = 0


def run(section: Section, context: TourContext) -> None:
    epochs = 2 if context.quick else 10
    source = trained_network(context)
    digits, faces = load_dataset("digits"), load_dataset("faces")
    parity = _write_parity_folder(digits, context.out_dir / "data" / "digit-parity")
    targets = [TargetRun("parity", "digit parity", str(parity), "none", val_count=len(digits.val)),
               TargetRun("faces", "faces", "faces", None, val_count=len(faces.val))]
    runs_dir = context.runs_dir / "transfer"
    cache = runs_dir / "features"

    section.say(
        "Training a CNN from scratch needs a large dataset and time. Transfer learning starts from a network "
        "trained on other data instead: its lower layers compute generic features (edges, strokes, blobs), its "
        "upper layers features specific to the old task. How much of it to reuse is the lecture's table: is the "
        "new dataset small or large, and similar or different to the pretraining data? Small and similar: train a "
        "linear classifier on the top features. Small and different: a classifier on an intermediate layer. Large "
        "and similar: fine-tune the top layers. Large and different: fine-tune the entire network."
    )
    section.say(
        f"The source here is stage 2's `sample_net`, trained on the handwritten digits. The first target asks a new "
        f"question of the same kind of images: is the digit even or odd ({len(digits.train):,} training images, "
        f"written to `{os.path.relpath(parity, context.out_dir)}` in the tour folder as an image folder). The second is other images altogether: scikit-image's 25×25 "
        "face and non-face patches (140 training images), resized to the network's 28×28."
    )
    _samples_figure(digits, faces, section.figure("targets", "The source's digits and the two targets, with their labels"))

    for target in targets:
        target.advice = advise(source, target.data, cache_dir=cache)
    section.table("The advisor's reading of each target (probe: validation accuracy of a logistic regression on "
                  "the layer's features)",
                  ["target", "training images per class (min)", "size", "probe at the classifier's input",
                   "probe's best layer", "similarity", "advice"],
                  [_advice_row(target) for target in targets])
    for target in targets:
        section.say(f"The advisor on {target.name}: {target.advice.explanation}")
    if targets[1].advice.similarity == "similar":
        faces_run = targets[1]
        section.say(
            f"Faces look nothing like digits, yet on these {faces_run.val_count} validation images (one image is "
            f"{100 / faces_run.val_count:.1f} points) the classifier's input separates them as well as any layer, so "
            "the probe calls them similar: the advisor measures what the features do on the data, not how the images look."
        )
    _probe_figure(targets, section.figure(
        "probe", "Where the features carry over: validation accuracy of a logistic regression on each layer"))

    top_layers, top_weights = _finetune_top_layers(source)
    labels = {**STRATEGY_LABELS, "finetune-top": f"finetune-top ({', '.join(top_layers)} and a new head)"}
    section.say(
        "Then each strategy on each target, and the same network trained from scratch on the target alone. "
        f"`finetune-top` trains the layers from the last stage up ({', '.join(top_layers)}: {top_weights:,} "
        "weights) and a new head, the layers below frozen. "
        + "`finetune-all` trains every layer, the pretrained ones at a tenth of the new head's learning rate."
    )
    for target in targets:
        _measure_strategies(source, target, epochs, context.seed, runs_dir, cache)
    _strategies_figure(targets, section.figure(
        "strategies", "Test accuracy and wall time of each strategy; the advisor's pick outlined in black"))
    section.table(
        f"Test top-1 of each strategy (wall seconds); fine-tuning and training from scratch: {epochs} epochs each",
        ["strategy", *(f"{target.name} ({target.test_count} test images)" for target in targets)],
        [[labels[strategy], *(_result_cell(target, strategy) for target in targets)] for strategy in STRATEGIES],
    )
    section.say(" ".join(_verdict(target) for target in targets))
    features_seconds = max(target.seconds[s] for target in targets for s in ("linear", "intermediate"))
    finetune_seconds = max(target.seconds["finetune-all"] for target in targets)
    section.say(
        "The probe is the experiment of Yosinski et al. (2014), \"How transferable are features in deep neural "
        "networks?\": the deeper the layer, the more its features belong to the old task, so a target that needs "
        "other features is better served by a shallower layer, or by letting fine-tuning change the top. Every "
        f"strategy is one `cnnkit transfer` command writing a run folder. Feature extraction took at most "
        f"{features_seconds:.1f} s (the network runs once over the data, its features are cached on disk and only a "
        f"logistic regression is trained); fine-tuning every layer took up to {finetune_seconds:.1f} s."
    )

    for target in targets:
        advice = target.advice
        section.metrics[f"{target.key}_advised"] = advice.strategy
        section.metrics[f"{target.key}_quadrant"] = advice.quadrant
        section.metrics[f"{target.key}_probe"] = {score.layer: score.val_top1 for score in advice.probe.scores}
        section.metrics[f"{target.key}_test_top1"] = dict(target.test_top1)
    section.metrics["epochs"] = epochs

    source = os.path.relpath(source, context.out_dir)  # commands run inside the tour folder
    for target in targets:
        data = target.data if target.data == "faces" else os.path.relpath(target.data, context.out_dir)
        data, advice = shlex.quote(data), target.advice
        augmentation = f" --augmentation {target.augmentation}" if target.augmentation else ""
        layer = f" --layer {advice.layer}" if advice.strategy == "intermediate" else ""
        epochs_option = f" --epochs {epochs}{augmentation}" if advice.strategy.startswith("finetune") else ""
        section.command(f"cnnkit transfer advise --from {shlex.quote(str(source))} --data {data}")
        section.command(f"cnnkit transfer --from {shlex.quote(str(source))} --data {data} "
                        f"--strategy {advice.strategy}{layer}{epochs_option}")
        section.command(f"cnnkit train --model sample_net --data {data} --image-size 28 --epochs {epochs}{augmentation}")


def _write_parity_folder(digits: Dataset, root: Path) -> Path:
    """The digits relabelled even/odd as an image folder ``root/{train,val,test}/{even,odd}/N.png``
    with the built-in splits kept, so the source network's test digits stay unseen."""
    for split in ("train", "val", "test"):
        images = digits.split(split)
        pixels = (images.images.clamp(0, 1) * 255).round().byte().numpy()  # (N, 1, 28, 28)
        for parity in ("even", "odd"):
            (root / split / parity).mkdir(parents=True, exist_ok=True)
        for index, (image, label) in enumerate(zip(pixels, images.labels.tolist())):
            Image.fromarray(image[0]).save(root / split / ("odd" if label % 2 else "even") / f"{index:04d}.png")
    return root


def _advice_row(target: TargetRun) -> list:
    advice = target.advice
    probe = advice.probe
    top, best = probe.score(HEAD_INPUT), probe.best
    pick = advice.strategy + (f" @ {advice.layer}" if advice.strategy == "intermediate" else "")
    return [target.name, advice.measurements["examples_per_class"]["min"], advice.size,
            f"{top.val_top1:.1%}", f"{best.layer} {best.val_top1:.1%}", advice.similarity, pick]


def _measure_strategies(source: Path, target: TargetRun, epochs: int, seed: int, runs_dir: Path, cache: Path) -> None:
    """Each transfer strategy through `transfer`, then the same network from scratch (`train`)."""
    config = default_config(epochs=epochs, runs_dir=str(runs_dir), augmentation=target.augmentation,
                            seed=seed, checkpoint_every_seconds=0.0)
    best_layer = target.advice.probe.best.layer
    for strategy in STRATEGIES[:4]:
        result = transfer(source, target.data, strategy=strategy, config=config, cache_dir=cache, progress=False,
                          layer=best_layer if strategy == "intermediate" else None)
        target.test_top1[strategy], target.seconds[strategy] = result.test["top1"], result.seconds
        target.test_count = result.test["count"]
    started = time.perf_counter()
    scratch = train(TrainConfig(model="sample_net", data=target.data, image_size=28, epochs=epochs,
                                augmentation=target.augmentation, seed=seed, runs_dir=str(runs_dir),
                                checkpoint_every_seconds=0.0), progress=False)
    target.test_top1["scratch"], target.seconds["scratch"] = scratch.test["top1"], time.perf_counter() - started


def _finetune_top_layers(source: Path) -> tuple[list[str], int]:
    """The pretrained layers `finetune-top` trains by default besides the new head, and their weight count."""
    pretrained = load_pretrained(source)
    task = FineTuneTask(pretrained, top_blocks=default_top_blocks(pretrained.model))
    model = task.build_model(default_config(), load_dataset("digits"))
    head = model.classifier_name + "."
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad and not name.startswith(head)}
    layers = sorted({name.split(".")[0] for name in trained}, key=list(dict(model.named_children())).index)
    return layers, sum(p.numel() for p in trained.values())


def _result_cell(target: TargetRun, strategy: str) -> str:
    layer = f" @ {target.advice.probe.best.layer}" if strategy == "intermediate" else ""
    advised = " ← advised" if strategy == target.advice.strategy else ""
    return f"{target.test_top1[strategy]:.1%}{layer} ({target.seconds[strategy]:.1f} s){advised}"


def _verdict(target: TargetRun) -> str:
    """One sentence per target: the best strategy, the advisor's pick and training from scratch."""
    scores, pick = target.test_top1, target.advice.strategy
    top = max(scores.values())
    best = [strategy for strategy in STRATEGIES if scores[strategy] == top]
    text = f"On {target.name} {' and '.join(best)} {'tied for' if len(best) > 1 else 'reached'} the best test accuracy ({top:.1%})"
    text += (", the advisor's pick among them." if pick in best and len(best) > 1 else ", the advisor's pick." if pick in best
             else f"; the advisor's pick, {pick}, reached {scores[pick]:.1%}, {100 * (top - scores[pick]):.1f} points below: "
                  f"{round((top - scores[pick]) * target.test_count)} of {target.test_count} test images.")
    transferred = max(scores[strategy] for strategy in STRATEGIES[:4])
    gap = transferred - scores["scratch"]
    text += (f" Training from scratch reached {scores['scratch']:.1%}, "
             + (f"{100 * gap:.1f} points below the best transfer." if gap > 0 else "no worse than transfer here."))
    return text


def _samples_figure(digits: Dataset, faces: Dataset, path: Path, count: int = 10) -> None:
    """Rows: test digits with their class, the same digits labelled even/odd, faces and non-faces."""
    rows = [
        ("source: digits", digits.test, [str(c) for c in range(10)], lambda label: label),
        ("target: digit parity", digits.test, ["even", "odd"], lambda label: label % 2),
        ("target: faces", faces.test, faces.classes, lambda label: label),
    ]
    plt = pyplot()
    figure, axes = plt.subplots(3, count, figsize=(count * 0.85, 3 * 1.15), layout="constrained")
    for row, (title, images, names, relabel) in zip(axes, rows):
        order = np.linspace(0, len(images) - 1, count).round().astype(int)
        for axis, index in zip(row, order):
            image, label = images[int(index)]
            axis.imshow(image[0].numpy(), cmap="gray" if "faces" in title else "gray_r")
            axis.set_title(names[relabel(int(label))], fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
        row[0].set_ylabel(title.replace(": ", ":\n"), fontsize=8)
    figure.suptitle("What the network was trained on, and the two new tasks")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _probe_figure(targets: list[TargetRun], path: Path) -> None:
    """Validation accuracy of the per-layer logistic regression, one line per target, peak starred."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    for target in targets:
        probe, advice = target.advice.probe, target.advice
        layers = [score.layer for score in probe.scores]
        line, = axis.plot(layers, [score.val_top1 for score in probe.scores], marker="o",
                          label=f"{target.name} ({target.val_count} validation images): "
                                f"{advice.quadrant} → {advice.strategy}")
        axis.plot([probe.best.layer], [probe.best.val_top1], marker="*", markersize=16, color=line.get_color())
    axis.set_xlabel("layer of the source network (shallow → deep)")
    axis.set_ylabel("validation accuracy")
    axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axis.grid(alpha=0.3)
    figure.legend(fontsize=8, loc="outside lower center")
    axis.set_title("Linear probe per layer (★ best layer)")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _strategies_figure(targets: list[TargetRun], path: Path) -> None:
    """Grouped bars: test accuracy (left) and wall seconds (right) per strategy and target."""
    plt = pyplot()
    figure, (accuracy, cost) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    width = 0.8 / len(targets)
    positions = np.arange(len(STRATEGIES))
    for k, target in enumerate(targets):
        offsets = positions + (k - (len(targets) - 1) / 2) * width
        edges = ["black" if strategy == target.advice.strategy else "none" for strategy in STRATEGIES]
        color = f"C{k}"
        bars = accuracy.bar(offsets, [target.test_top1[s] for s in STRATEGIES], width, color=color,
                            edgecolor=edges, linewidth=2)
        accuracy.bar_label(bars, [f"{target.test_top1[s]:.0%}" for s in STRATEGIES], fontsize=7, padding=1)
        bars = cost.bar(offsets, [target.seconds[s] for s in STRATEGIES], width, color=color, edgecolor=edges, linewidth=2)
        cost.bar_label(bars, [f"{target.seconds[s]:.1f}" for s in STRATEGIES], fontsize=7, padding=1)
    lowest = min(min(target.test_top1.values()) for target in targets)
    accuracy.set_ylim(max(0.0, lowest - 0.1), 1.04)
    accuracy.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    accuracy.set_ylabel("test accuracy")
    accuracy.set_title("Accuracy on the test split")
    cost.set_ylabel("wall seconds")
    cost.set_title("Cost")
    for axis in (accuracy, cost):
        axis.set_xticks(positions, STRATEGIES, rotation=20)
        axis.grid(axis="y", alpha=0.3)
    handles = [Patch(color=f"C{k}", label=target.name) for k, target in enumerate(targets)]
    handles.append(Patch(facecolor="white", edgecolor="black", linewidth=2, label="the advisor's pick"))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
    figure.suptitle("Each strategy on each target")
    figure.savefig(path, dpi=100)
    plt.close(figure)
