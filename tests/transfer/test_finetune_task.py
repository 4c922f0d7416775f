"""Fine-tuning through the engine: frozen blocks, batch-norm statistics, per-group learning rates."""

import pytest
import torch

from cnnkit.train import TrainConfig, train
from cnnkit.transfer import FineTuneTask, load_pretrained


@pytest.fixture(scope="module")
def pretrained(pretrained_file):
    return load_pretrained(pretrained_file)


def test_top_blocks_train_the_rest_is_frozen_with_its_statistics(pretrained, shapes):
    task = FineTuneTask(pretrained, top_blocks=2)
    model = task.build_model(TrainConfig(), shapes)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert {name.rsplit(".", 2)[0] for name in trainable} == {"layer3.1", "layer3.2", "linear"}
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith(("conv1", "layer1", "layer3.0")))
    frozen_stats = model.layer1[0].bn1.running_mean.clone()
    trained_stats = model.layer3[2].bn1.running_mean.clone()
    model.train()
    model(torch.rand(8, 3, 32, 32))
    assert torch.equal(model.layer1[0].bn1.running_mean, frozen_stats)  # frozen: eval-mode statistics
    assert not torch.equal(model.layer3[2].bn1.running_mean, trained_stats)
    groups = task.parameter_groups(model, TrainConfig())
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    assert {id(p) for p in groups[0]["params"]} == {id(model.linear.weight), id(model.linear.bias)}


def test_freeze_bn_keeps_every_statistic(pretrained, shapes):
    model = FineTuneTask(pretrained, top_blocks=None, freeze_bn=True).build_model(TrainConfig(), shapes)
    assert all(p.requires_grad for p in model.parameters())
    before = model.layer3[2].bn2.running_var.clone()
    model.train()
    model(torch.rand(8, 3, 32, 32))
    assert torch.equal(model.layer3[2].bn2.running_var, before)


def test_new_head_pretrained_trunk_and_pretrained_normalisation(pretrained, shapes):
    model = FineTuneTask(pretrained).build_model(TrainConfig(), shapes)
    torch.testing.assert_close(model.conv1.weight, pretrained.model.conv1.weight)
    assert model.linear.out_features == shapes.num_classes
    assert shapes.mean == pytest.approx(pretrained.mean)


def test_too_many_blocks_names_them(pretrained, shapes):
    with pytest.raises(ValueError, match="top_blocks 12 exceeds the 9 blocks of resnet20 \\(layer1.0"):
        FineTuneTask(pretrained, top_blocks=12).build_model(TrainConfig(), shapes)


def test_engine_gives_pretrained_layers_a_scaled_learning_rate(pretrained, tmp_path):
    """One short epoch on faces (grey, 25×25: adapted to 3 channels' filters and resized)."""
    config = TrainConfig(data="faces", image_size=32, epochs=1, batch_size=70, lr=0.02, schedule="constant",
                         runs_dir=str(tmp_path), name="ft", checkpoint_every_seconds=0.0)
    result = train(config, task=FineTuneTask(pretrained, top_blocks=1, pretrained_lr_scale=0.25), progress=False)
    state = torch.load(result.run_dir / "last.pt", weights_only=True)
    assert [group["lr"] for group in state["optimizer"]["param_groups"]] == pytest.approx([0.02, 0.005])
    assert result.model.conv1.in_channels == 1
    assert state["dataset"]["mean"] == pytest.approx([sum(pretrained.mean) / 3])


def test_head_starts_from_the_given_linear_classifier(pretrained, shapes):
    head = torch.nn.Linear(64, shapes.num_classes)
    model = FineTuneTask(pretrained, head=head).build_model(TrainConfig(), shapes)
    torch.testing.assert_close(model.linear.weight, head.weight)
    with pytest.raises(ValueError, match="initial head \\(3, 64\\) does not fit the classifier \\(2, 64\\)"):
        from cnnkit.data import load_dataset

        FineTuneTask(pretrained, head=head).build_model(TrainConfig(), load_dataset("faces", image_size=32))


def test_top_block_of_a_lenet_trains_its_fully_connected_layers_above_the_last_pooling():
    """sample_net's stages are its two poolings (no parameters): fine-tuning the top block
    means everything above the first pooling's output, conv2 staying frozen with one block."""
    from cnnkit.data import load_dataset
    from cnnkit.models import create_model
    from cnnkit.transfer import Pretrained

    digits = load_dataset("digits")
    source = Pretrained(model=create_model("sample_net").eval(), architecture="sample_net", mean=digits.mean,
                        std=digits.std, image_size=(28, 28), in_channels=1, classes=None, source="test", fingerprint="0")
    trained = {}
    for top in (0, 1, 2):
        model = FineTuneTask(source, top_blocks=top).build_model(TrainConfig(), load_dataset("digits"))
        trained[top] = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trained == {0: {"fc3"}, 1: {"fc1", "fc2", "fc3"}, 2: {"conv2", "fc1", "fc2", "fc3"}}
