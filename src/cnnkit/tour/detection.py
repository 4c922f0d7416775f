"""Stage 6 of the tour: R-CNN, Fast R-CNN and Faster R-CNN trained on digit scenes, one after the
other, each starting from its predecessor's network (`cnnkit detect train --init-from`), then
compared on the same test scenes: detections drawn, proposals shown, mAP and time per image.

Each run trains through the engine (`cnnkit.train.train` with a `DetectionConfig`), as the
printed commands do. Time per image is measured here, interleaved over the same scenes
(selective search once, its boxes given to R-CNN and Fast R-CNN), so that the three compare on
a busy machine too; mAP is the test split's figure from each run's report.
"""

from __future__ import annotations

import os
import shlex
import statistics
import time

import torch

from cnnkit.detection.predict import load_detector
from cnnkit.data.scenes import digit_scenes
from cnnkit.detection.task import DetectionConfig
from cnnkit.figures import pyplot
from cnnkit.train import train
from cnnkit.tour.section import Section, TourContext

NAMES = {"rcnn": "R-CNN", "fast-rcnn": "Fast R-CNN", "faster-rcnn": "Faster R-CNN"}
COLOURS = {"rcnn": "tab:orange", "fast-rcnn": "tab:green", "faster-rcnn": "tab:blue"}

# Each run: the `cnnkit detect train` options that differ from the defaults. The first run
# pre-trains the backbone on single digits; the next ones start from the run before them.
# R-CNN fine-tunes on one image (32 warped regions) per step at a constant rate, then fits its SVMs.
RCNN_FINE_TUNING = {"epochs": 2, "batch_size": 1, "lr": 0.01, "warmup_steps": 0, "schedule": "constant"}
RUNS = {
    True: {  # quick: about 30 s on one thread
        "rcnn": {"train_images": 24, "pretrain_steps": 40, **RCNN_FINE_TUNING},
        "fast-rcnn": {"train_images": 24, "epochs": 6, "batch_size": 4, "lr": 0.01, "warmup_steps": 10},
        "faster-rcnn": {"train_images": 50, "epochs": 6, "batch_size": 4, "lr": 0.01, "warmup_steps": 10},
    },
    False: {  # full: about 160 s on one thread
        "rcnn": {"train_images": 100, "pretrain_steps": 200, **RCNN_FINE_TUNING},
        "fast-rcnn": {"train_images": 150, "epochs": 8, "batch_size": 4, "lr": 0.01, "warmup_steps": 10},
        "faster-rcnn": {"train_images": 200, "epochs": 8, "batch_size": 4, "lr": 0.01, "warmup_steps": 10},
    },
}
SPLITS = {True: {"val_images": 6, "test_images": 20}, False: {"val_images": 20, "test_images": 50}}
TIMED_SCENES = {True: 8, False: 20}


def run(section: Section, context: TourContext) -> None:
    section.say(
        "Detection asks what is where: a class and a box for every object. The lecture's path has three steps. "
        "R-CNN takes ~2000 region proposals from selective search (a bottom-up grouping of similar pixels), "
        "warps each region to the CNN's input size and runs the CNN once per region; linear SVMs score its "
        "features and a regressor refines its box. Fast R-CNN runs the convolutional layers once per image "
        "and cuts each proposal's features out of the shared map by RoI pooling to a fixed 7×7 grid; one network "
        "then classifies and regresses boxes, trained with one multi-task loss. Faster R-CNN replaces selective "
        "search by a region proposal network: a small convolution over the same feature map scores a set of "
        "anchors (boxes of 3 sizes × 3 aspect ratios at every position) as object or not and moves them.")
    quick = context.quick
    runs, previous = {}, None
    for method, options in RUNS[quick].items():
        config = DetectionConfig(method=method, **options, **SPLITS[quick], patience=0, seed=context.seed,
                                 runs_dir=str(context.runs_dir), name=method, init_from=previous)
        runs[method] = train(config, progress=False, log=lambda line: None)
        previous = str(runs[method].run_dir)
        section.command(_train_command(config, context.out_dir))
    section.command(f"cnnkit detect evaluate {shlex.quote(os.path.relpath(runs['faster-rcnn'].run_dir, context.out_dir))}")
    reports = {method: run.report for method, run in runs.items()}

    models = {method: load_detector(run.run_dir) for method, run in runs.items()}
    scenes = digit_scenes("test", TIMED_SCENES[quick], seed=context.seed)
    timing = _time_per_image(models, scenes)
    scene = 0
    _draw_detections(section, scenes, scene, timing["detections"], reports)
    _draw_proposals(section, scenes, scene, timing["proposals"], models["faster-rcnn"])
    _draw_speed(section, timing)
    _draw_training(section, {method: run.history for method, run in runs.items()})

    rows, metrics = [], section.metrics
    for method, report in reports.items():
        test, key = report["test"], method.replace("-", "_")
        metrics[f"{key}_map50"], metrics[f"{key}_map"] = round(test["map50"], 4), round(test["map"], 4)
        metrics[f"{key}_ms_per_image"] = round(timing["total_ms"][method], 2)
        metrics[f"{key}_proposals_per_image"] = round(timing["proposals_per_image"][method], 1)
        seconds = report["timing"]["train_seconds"]
        metrics[f"{key}_train_seconds"] = round(seconds, 1)
        rows.append([NAMES[method], f"{test['map50']:.3f}", f"{test['map']:.3f}", f"{timing['total_ms'][method]:.1f}",
                     f"{timing['proposals_per_image'][method]:.0f}", f"{seconds:.0f}"])
    metrics["selective_search_ms_per_image"] = round(timing["selective_search_ms"], 2)
    metrics["test_images"] = reports["faster-rcnn"]["test"]["images"]
    section.table(f"The three detectors on the same {metrics['test_images']} test scenes (mAP) and "
                  f"{len(scenes)} of them timed one image at a time, interleaved (median)",
                  ["detector", "mAP@0.5", "COCO mAP (0.5:0.95)", "ms per image", "proposals per image",
                   "training s"], rows)

    map50 = {method: report["test"]["map50"] for method, report in reports.items()}
    ms, regions = timing["total_ms"], timing["proposals_per_image"]
    section.say(
        f"Here the three share one CNN: R-CNN's run pre-trains a small stride-8 backbone on single digits and "
        f"fine-tunes it on warped regions; Fast R-CNN starts from that backbone and its fc6–fc7 layers, and "
        f"Faster R-CNN from Fast R-CNN's network, adding only the RPN (`cnnkit detect train --init-from RUN`). "
        f"On the test scenes (digits never seen in training) they reach mAP@0.5 of {map50['rcnn']:.2f}, {map50['fast-rcnn']:.2f} and "
        f"{map50['faster-rcnn']:.2f}" + (" after a few dozen training steps each (the quick tour; the full tour "
                                         "trains longer). " if quick else ". ") +
        "COCO mAP, which averages over IoU thresholds up to 0.95 and so asks for tight boxes, is lower: "
        + ", ".join(f"{reports[method]['test']['map']:.2f}" for method in NAMES)
        + "; loose boxes are also why a digit can keep two overlapping detections after non-maximum suppression.")
    section.say(
        f"Time is where the lecture's story shows. Selective search alone takes {timing['selective_search_ms']:.0f} ms "
        f"per scene and finds about {regions['rcnn']:.0f} regions in these simple images (a photograph gives ~2000). "
        f"R-CNN then runs the CNN on every warped region ({timing['network_ms']['rcnn']:.1f} ms here, "
        f"and growing with the number of regions), Fast R-CNN once per image "
        f"({timing['network_ms']['fast-rcnn']:.1f} ms), so both wait mostly for the proposals: "
        f"{ms['rcnn']:.0f} and {ms['fast-rcnn']:.0f} ms per image. Faster R-CNN proposes with the network it "
        f"already ran and needs {ms['faster-rcnn']:.0f} ms for everything, {regions['faster-rcnn']:.0f} proposals "
        f"included: {ms['rcnn'] / ms['faster-rcnn']:.1f}× faster than R-CNN.")


def _train_command(config: DetectionConfig, root) -> str:
    """The ``cnnkit detect train`` line for ``config``, its paths relative to the tour folder ``root``."""
    defaults = DetectionConfig()
    words = ["cnnkit", "detect", "train"]
    for name in ("method", "train_images", "val_images", "test_images", "epochs", "batch_size", "lr", "warmup_steps",
                 "schedule", "pretrain_steps", "patience", "seed", "init_from", "runs_dir", "name"):
        value = getattr(config, name)
        if value != getattr(defaults, name) and not (name == "pretrain_steps" and config.init_from):
            words += ["--" + name.replace("_", "-"),
                      os.path.relpath(value, root) if name in ("runs_dir", "init_from") else str(value)]
    return shlex.join(words)


@torch.no_grad()
def _time_per_image(models: dict, scenes) -> dict:
    """Per scene, interleaved: selective search, R-CNN and Fast R-CNN given its boxes, Faster R-CNN
    whole; medians in ms, the proposal counts and each detector's detections."""
    from cnnkit.detection.proposals import SelectiveSearch

    search = SelectiveSearch(models["rcnn"].proposer.max_proposals)
    seconds = {name: [] for name in ("search", "rcnn", "fast-rcnn", "faster-rcnn")}
    detections = {method: [] for method in models}
    proposals, rpn_counts = [], []
    for index in range(len(scenes)):
        image = scenes.image(index)
        start = time.perf_counter()
        boxes = search(image)  # (P, 4)
        seconds["search"].append(time.perf_counter() - start)
        proposals.append(boxes)
        for method, model in models.items():
            start = time.perf_counter()
            found = model.predict([image]) if method == "faster-rcnn" else model.predict([image], [boxes])
            seconds[method].append(time.perf_counter() - start)
            detections[method].append(found[0])
        rpn_counts.append(len(_rpn_proposals(models["faster-rcnn"], image)))
    median = {name: 1000 * statistics.median(values) for name, values in seconds.items()}
    search_ms = median.pop("search")
    total = {method: value + (search_ms if method != "faster-rcnn" else 0.0) for method, value in median.items()}
    regions = sum(map(len, proposals)) / len(proposals)
    return {"selective_search_ms": search_ms, "network_ms": median, "total_ms": total, "detections": detections,
            "proposals": proposals, "proposals_per_image": {"rcnn": regions, "fast-rcnn": regions,
                                                            "faster-rcnn": sum(rpn_counts) / len(rpn_counts)}}


@torch.no_grad()
def _rpn_proposals(model, image):
    """The RPN's proposals ``(P, 4)`` for one image, best objectness first, in the image's pixels:
    the first three of Faster R-CNN's five stages (transform, backbone, rpn)."""
    from cnnkit.detection.transform import scale_boxes

    batch, _ = model.transform([image])
    features = list(model.backbone(batch.tensors).values())
    proposals, _ = model.rpn(batch.tensors, batch.image_sizes, features, training=False)
    return scale_boxes(proposals[0], batch.image_sizes[0], tuple(image.shape[-2:]))


def _show(axis, image, title):
    axis.imshow(image.permute(1, 2, 0).numpy(), vmin=0, vmax=1)
    axis.set_title(title, fontsize=10)
    axis.set_axis_off()


def _box(axis, box, colour, width=1.5, style="-", alpha=1.0):
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = box.tolist()
    axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=width,
                             linestyle=style, alpha=alpha))


def _draw_detections(section, scenes, scene, detections, reports, threshold=0.5):
    plt = pyplot()
    image, target = scenes.image(scene), scenes.targets[scene]
    figure, axes = plt.subplots(1, 3, figsize=(9.6, 3.6), dpi=100)
    for axis, (method, found) in zip(axes, detections.items()):
        shown = found[scene].above(threshold)
        _show(axis, image, f"{NAMES[method]} (test mAP@0.5 {reports[method]['test']['map50']:.2f})")
        for box in target["boxes"]:
            _box(axis, box, "white", 1.0, "--", 0.7)
        for box, label, score in zip(shown.boxes, shown.labels.tolist(), shown.scores.tolist()):
            _box(axis, box, COLOURS[method], 2.0)
            axis.text(box[0], box[1] - 1, f"{scenes.categories[label - 1]} {score:.2f}", color="white", fontsize=8,
                      va="bottom", bbox={"facecolor": COLOURS[method], "pad": 1, "linewidth": 0})
    truth = ", ".join(scenes.categories[k - 1] for k in target["labels"].tolist())
    figure.suptitle(f"One test scene (digits {truth}; dashed: ground truth), detections with score ≥ {threshold}",
                    fontsize=11)
    figure.tight_layout()
    figure.savefig(section.figure("detections", "The same test scene through each detector: boxes with class and "
                                  "score, ground truth dashed"))
    plt.close(figure)


def _draw_proposals(section, scenes, scene, proposals, faster, shown=20):
    plt = pyplot()
    image, target = scenes.image(scene), scenes.targets[scene]
    regions, rpn = proposals[scene], _rpn_proposals(faster, image)
    figure, axes = plt.subplots(1, 3, figsize=(9.6, 3.6), dpi=100)
    _show(axes[0], image, f"selective search: {len(regions)} regions")
    for box in regions:
        _box(axes[0], box, "tab:orange", 1.0, alpha=0.8)
    cell = faster.rpn.anchor_generator.cell_anchors[0]  # (A, 4) centred on (0, 0)
    stride = 8  # the small backbone's
    centre = ((target["boxes"][0, :2] + target["boxes"][0, 2:]) / 2 / stride).round() * stride
    _show(axes[1], image, f"the {len(cell)} anchors of one position")
    for box in cell + centre.repeat(2):
        _box(axes[1], box, "tab:cyan", 1.2)
    _show(axes[2], image, f"RPN: the {min(shown, len(rpn))} best of {len(rpn)} proposals")
    for rank, box in enumerate(rpn[:shown]):
        _box(axes[2], box, "tab:blue", 1.5, alpha=1.0 - 0.7 * rank / shown)
    figure.suptitle("Where the detectors look: bottom-up regions against anchors scored by the network", fontsize=11)
    figure.tight_layout()
    figure.savefig(section.figure("proposals", "Proposals on the same scene: selective search's regions (R-CNN, "
                                  "Fast R-CNN), the RPN's anchors at one position and its best proposals (Faster R-CNN)"))
    plt.close(figure)


def _draw_speed(section, timing):
    plt = pyplot()
    methods = list(NAMES)
    figure, axis = plt.subplots(figsize=(7.5, 3.0), dpi=100)
    search = [timing["selective_search_ms"] if method != "faster-rcnn" else 0.0 for method in methods]
    network = [timing["network_ms"][method] for method in methods]
    labels = [NAMES[method] for method in methods]
    axis.barh(labels, search, color="tab:gray", label="selective search")
    axis.barh(labels, network, left=search, color=[COLOURS[method] for method in methods],
              label="the network (RPN included for Faster R-CNN)")
    for y, (left, width) in enumerate(zip(search, network)):
        axis.text(left + width, y, f" {left + width:.0f} ms", va="center", fontsize=9)
    axis.invert_yaxis()
    axis.set_xlabel("milliseconds per image (median, one image at a time)")
    axis.set_xlim(0, 1.2 * max(s + n for s, n in zip(search, network)))
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title("Time per image: proposals against the network")
    figure.tight_layout()
    figure.savefig(section.figure("speed", "Milliseconds per test image, split into selective search and the "
                                  "network; the same scenes for all three, interleaved"))
    plt.close(figure)


def _draw_training(section, histories):
    plt = pyplot()
    figure, (loss_axis, map_axis) = plt.subplots(1, 2, figsize=(9.0, 3.2), dpi=100)
    for method, history in histories.items():
        epochs = [record["epoch"] + 1 for record in history]
        loss_axis.plot(epochs, [record["train_loss"] for record in history], "o-", color=COLOURS[method],
                       label=f"{NAMES[method]}, training")
        loss_axis.plot(epochs, [record["val_loss"] for record in history], "o--", color=COLOURS[method],
                       label=f"{NAMES[method]}, validation")
        label = f"{NAMES[method]} (softmax, before its SVMs)" if method == "rcnn" else NAMES[method]
        map_axis.plot(epochs, [record["val_map50"] for record in history], "o-", color=COLOURS[method], label=label)
    loss_axis.set(title="Loss per epoch", xlabel="epoch", ylabel="classification + box losses")
    map_axis.set(title="Validation mAP@0.5 per epoch", xlabel="epoch", ylim=(0, 1))
    loss_axis.legend(fontsize=7)
    map_axis.legend(fontsize=7)
    for axis in (loss_axis, map_axis):
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    figure.savefig(section.figure("training", "Training: the loss per epoch (R-CNN fine-tunes its CNN as a region "
                                  "classifier; Faster R-CNN adds the RPN's two losses to Fast R-CNN's) and "
                                  "validation mAP@0.5"))
    plt.close(figure)
