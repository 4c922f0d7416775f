"""The training engine of every task: loop, checkpoints with exact resume, run folders, progress,
early stopping and data-parallel training. A task supplies its data, model, batches, losses,
evaluation and state (`cnnkit.train.task`; `ClassificationTask` for image classification,
detection and segmentation in their packages).

    from cnnkit.train import TrainConfig, train, resume, load_trained
    result = train(TrainConfig(model="sample_net", data="digits"))   # runs/sample_net-digits/
    result.test["top1"]                                               # ≈ 0.98
    trained = load_trained(result.run_dir)                            # model, classes, mean, std
"""

import importlib

# Each name is imported from its module when first asked for (PEP 562), so that reading a
# checkpoint (`cnnkit.train.checkpoint`) for inference does not load the training engine.
_HOMES = {
    "ClassificationTask": "task", "Step": "task",
    "RunConfig": "config", "TrainConfig": "config",
    "RunResult": "engine", "TrainingError": "engine", "resume": "engine", "train": "engine",
    "confusion_matrix": "metrics", "evaluate": "metrics", "per_class_accuracy": "metrics", "topk_correct": "metrics",
    "TrainedModel": "trained", "load_trained": "trained",
    "load_checkpoint": "checkpoint",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'cnnkit.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cnnkit.train.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return __all__
