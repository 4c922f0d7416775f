"""The training engine of every task: loop, checkpoints with exact resume, run folders, progress,
early stopping and data-parallel training. A task supplies its data, model, batches, losses,
evaluation and state (`cnnkit.train.task`; `ClassificationTask` for image classification,
detection and segmentation in their packages).

    from cnnkit.train import TrainConfig, train, resume, load_trained
    result = train(TrainConfig(model="sample_net", data="digits"))   # runs/sample_net-digits/
    result.test["top1"]                                               # ≈ 0.98
    trained = load_trained(result.run_dir)                            # model, classes, mean, std
"""

from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import RunConfig, TrainConfig
from cnnkit.train.engine import RunResult, TrainingError, resume, train
from cnnkit.train.metrics import confusion_matrix, evaluate, per_class_accuracy, topk_correct
from cnnkit.train.task import ClassificationTask, Step
from cnnkit.train.trained import TrainedModel, load_trained

__all__ = [
    "ClassificationTask",
    "RunConfig",
    "RunResult",
    "Step",
    "TrainConfig",
    "TrainedModel",
    "TrainingError",
    "confusion_matrix",
    "evaluate",
    "load_checkpoint",
    "load_trained",
    "per_class_accuracy",
    "resume",
    "topk_correct",
    "train",
]
