"""TrainConfig: JSON round-trip, validation messages."""

import json

import pytest

from cnnkit.train import TrainConfig


def test_round_trip_through_json():
    config = TrainConfig(model="resnet20", data="cifar10", lr_milestones=[82, 123], clip_grad_norm=1.0,
                         schedule="step", name="r20", amp=True)
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_unknown_field_names_the_closest():
    with pytest.raises(ValueError, match="'batchsize' .*did you mean 'batch_size'"):
        TrainConfig.from_dict({"batchsize": 3})


@pytest.mark.parametrize("field, value", [("optimizer", "adam"), ("schedule", "poly"), ("epochs", 0),
                                          ("lr", -1.0), ("name", "a/b")])
def test_bad_values_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})
