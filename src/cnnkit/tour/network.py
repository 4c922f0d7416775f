"""Stage 2: a network in the lecture's compact notation, its per-layer summary, and the network
trained on scikit-learn's handwritten digits, with learning curves and a confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cnnkit.data import load_dataset
from cnnkit.figures import pyplot
from cnnkit.models import create_model
from cnnkit.nn import build_network, summarize
from cnnkit.tour.section import Section, TourContext
from cnnkit.train import TrainConfig, load_trained, train
from cnnkit.train.figures import confusion_matrix_figure, learning_curves_figure
from cnnkit.train.metrics import evaluate

SAMPLE_NET = "conv 5x5x6 p2 relu | pool max 2 | conv 5x5x16 relu | pool max 2 | fc 120 relu | fc 84 relu | fc 10"
"""The lecture's sample network (``cnnkit.models.sample_net``) in the compact notation (K, n_K, s, p)."""


def trained_network(context: TourContext) -> Path:
    """The run folder of sample_net trained on digits: stage 2's, or trained here when stage 2 did not run."""
    if "network_run" not in context.shared:
        config = TrainConfig(model="sample_net", data="digits", epochs=4 if context.quick else 12,
                             seed=context.seed, runs_dir=str(context.runs_dir), checkpoint_every_seconds=0.0)
        context.shared["network_run"] = train(config, progress=False).run_dir
    return context.shared["network_run"]


def run(section: Section, context: TourContext) -> None:
    section.say(
        "A convolutional network is a chain of stages: convolutions with K×K kernels, n_K of them, "
        "stride s and padding p, each followed by an activation, with pooling between them, and fully "
        "connected layers at the end. The lecture's sample network, in cnnkit's compact notation:"
    )
    section.say(f"`{SAMPLE_NET}`")
    described = build_network(SAMPLE_NET, in_channels=1, input_size=28)
    registered = create_model("sample_net")
    summary = summarize(described, (1, 28, 28))
    same = summary.total_params == sum(p.numel() for p in registered.parameters())
    section.table(
        "Per-layer summary for a 1×28×28 digit (RF: receptive field in input pixels; jump: input pixels between neighbouring outputs)",
        ["layer", "type", "output", "parameters", "multiply-adds", "RF", "jump"],
        [[layer.name, layer.type, _shape(layer.output_shape), f"{layer.trainable_params:,}", f"{layer.multiply_adds:,}",
          _shape(layer.receptive_field), _shape(layer.jump)] for layer in summary.layers if layer.output_shape],
    )
    section.say(
        f"Built from the text, the network has {summary.total_params:,} parameters and needs "
        f"{summary.multiply_adds / 1e6:.2f} M multiply-adds per image"
        + (", exactly as many parameters as the registered `sample_net`." if same else ".")
        + " Almost all parameters sit in the first fully connected layer; almost all multiply-adds in the convolutions: "
        "sparse connectivity and parameter sharing at work."
    )
    section.metrics.update(parameters=summary.total_params, multiply_adds=summary.multiply_adds)

    run_dir = trained_network(context)
    trained = load_trained(run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    dataset = load_dataset("digits")
    scores = evaluate(trained.model, dataset.test, mean=dataset.mean, std=dataset.std, num_classes=dataset.num_classes)
    epochs = trained.config.epochs
    section.say(
        f"Trained with SGD (momentum 0.9, cosine schedule) for {epochs} epochs on {len(dataset.train)} of scikit-learn's "
        f"8×8 handwritten digits (enlarged to 28×28), the network classifies {scores['top1']:.1%} of the "
        f"{scores['count']} held-out test digits correctly. The run folder holds the checkpoints, the "
        "configuration and metrics.jsonl; it can be resumed, evaluated and exported."
    )
    learning_curves_figure(records, section.figure("learning-curves", "Loss and accuracy per epoch, training and validation"),
                           title="sample_net on digits")
    confusion_matrix_figure(scores["confusion_matrix"], dataset.classes,
                            section.figure("confusion", "Confusion matrix on the held-out test digits"), title="test digits")
    _predictions_figure(trained, dataset, section.figure("predictions", "Test digits with the network's answers; mistakes in red"))
    section.metrics.update(test_accuracy=scores["top1"], epochs=epochs, run=str(run_dir.relative_to(context.out_dir)))
    section.command(f"cnnkit summary '{SAMPLE_NET}' --input 1x28x28")
    section.command(f"cnnkit train --model sample_net --data digits --epochs {epochs}")
    section.command("cnnkit evaluate runs/sample_net-digits -o confusion.png")


def _predictions_figure(trained, dataset, path: Path, count: int = 32) -> None:
    """A grid of the first ``count`` test digits titled with the predicted class (red when wrong)."""
    images = torch.stack([dataset.test[i][0] for i in range(count)])  # (N, 1, 28, 28)
    labels = [int(dataset.test[i][1]) for i in range(count)]
    mean, std = torch.tensor(trained.mean).view(1, -1, 1, 1), torch.tensor(trained.std).view(1, -1, 1, 1)
    with torch.no_grad():
        predicted = trained.model((images - mean) / std).argmax(1).tolist()
    plt = pyplot()
    figure, axes = plt.subplots(4, count // 4, figsize=(count // 4 * 0.9, 4 * 1.0), layout="constrained")
    for axis, image, label, guess in zip(axes.flat, images, labels, predicted):
        axis.imshow(image[0].numpy(), cmap="gray_r")
        axis.set_title(dataset.classes[guess], color="black" if guess == label else "red", fontsize=10)
        axis.axis("off")
    figure.suptitle("test digits, predicted class above each")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _shape(shape) -> str:
    return "-" if shape is None else "×".join(map(str, shape))
