"""The compact network description: parsing, building, printing back, and pointed errors."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit.nn import ACTIVATIONS, LENET_DESCRIPTION, DescriptionError, build_network, describe, parse_description


def test_lenet_sample_has_lenet5_shapes_and_parameter_count():
    network = build_network(LENET_DESCRIPTION, in_channels=1, input_size=32)
    # C1 5·5·1·6+6, C3 5·5·6·16+16, fc 400·120+120, 120·84+84, 84·10+10 (LeCun et al. 1998: 61,706 with C3's full connections)
    assert sum(p.numel() for p in network.parameters()) == 156 + 2416 + 48120 + 10164 + 850 == 61706
    assert network(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert network.default_input_size == (1, 32, 32)
    assert describe(network) == LENET_DESCRIPTION


def test_built_network_computes_what_the_description_says():
    network = build_network("conv 3x3x4 s2 p1 relu | pool max 2 | fc 5 tanh", in_channels=2, input_size=(12, 8))
    x = torch.randn(3, 2, 12, 8)
    conv = network.conv1.conv
    features = torch.max_pool2d(torch.relu(torch.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)), 2)
    assert features.shape == (3, 4, 3, 2)  # ⌊(12+2-3)/2⌋+1 = 6 → 3, ⌊(8+2-3)/2⌋+1 = 4 → 2
    linear = network.fc1.linear
    assert linear.in_features == 4 * 3 * 2
    torch.testing.assert_close(network(x), torch.tanh(features.flatten(1) @ linear.weight.T + linear.bias))


def test_defaults_are_dropped_and_options_may_come_in_any_order():
    text = "conv 5×5×6 s1 p0 tanh | pool max 2 s2 | conv 3x3x8 relu bn p1 | pool l2 3x2 s1 | dropout 0.50 | fc 10"
    assert describe(build_network(text, input_size=28)) == (
        "conv 5x5x6 tanh | pool max 2 | conv 3x3x8 p1 bn relu | pool l2 3x2 s1 | dropout 0.5 | fc 10"
    )


def test_pool_after_conv_joins_its_block_and_other_layers_get_their_own_names():
    network = build_network("pool avg 2 | conv 3x3x4 | pool max 2 | pool max 2 | fc 8 | dropout 0.2 | fc 2", input_size=40)
    assert list(network._modules) == ["pool1", "conv1", "pool2", "flatten", "fc1", "dropout1", "fc2"]
    assert [name for name, _ in network.conv1.named_children()] == ["conv", "pool"]
    assert network.fc1.linear.in_features == 4 * 4 * 4  # 40 → 20 → 18 → 9 → 4


def _conv(draw):
    kernel = draw(st.sampled_from(["1x1", "3x3", "5x5", "3x1", "1x3"]))
    options = [f"s{draw(st.integers(2, 2))}"] if draw(st.booleans()) else []
    options += [f"p{draw(st.integers(1, 2))}"] if draw(st.booleans()) else []
    options += ["bn"] if draw(st.booleans()) else []
    activation = draw(st.sampled_from(["none", *ACTIVATIONS]))
    options += [activation] if activation != "none" else []
    return f"conv {kernel}x{draw(st.integers(1, 4))}" + "".join(f" {option}" for option in options)


def _pool(draw):
    kind = draw(st.sampled_from(["max", "avg", "l2"]))
    window = draw(st.integers(2, 3))
    text = f"pool {kind} {window}"
    text += " s1" if draw(st.booleans()) else ""
    text += " p1" if kind != "l2" and draw(st.booleans()) else ""
    return text


@st.composite
def descriptions(draw):
    """Random canonical descriptions: conv and pool stages, then dropouts and fc stages."""
    stages = [_conv(draw) if draw(st.booleans()) else _pool(draw) for _ in range(draw(st.integers(1, 4)))]
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            stages.append(f"dropout {draw(st.sampled_from(['0.1', '0.5']))}")
        activation = draw(st.sampled_from(["", " relu", " bn tanh"]))
        stages.append(f"fc {draw(st.integers(1, 12))}{activation}")
    return " | ".join(stages)


@settings(max_examples=60, deadline=None)
@given(text=descriptions())
def test_description_round_trips_through_network(text):
    try:
        network = build_network(text, in_channels=3, input_size=24)
    except DescriptionError as error:
        assume("does not fit" not in str(error))  # a random stack may shrink the maps below a kernel
        raise
    assert describe(network) == text
    rebuilt = build_network(describe(network), in_channels=3, input_size=24)
    assert repr(rebuilt) == repr(network)
    assert parse_description(describe(rebuilt)) == parse_description(text)


def test_describe_reads_a_hand_written_sequential():
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(16, 8, (1, 3), stride=2), nn.GELU()),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(8 * 8 * 7, 10),
    )
    with pytest.raises(ValueError, match="'5' Flatten.*flattens only right before the first fc"):
        describe(model)  # the dropout sits between flatten and fc
    del model[6]
    assert describe(model) == "conv 3x3x16 p1 bn relu | pool max 2 | conv 1x3x8 s2 gelu | fc 10"


@pytest.mark.parametrize(
    "model, complaint",
    [
        (nn.Conv2d(3, 8, 3), "nn.Sequential"),
        (nn.Sequential(nn.Conv2d(3, 8, 3, dilation=2)), "dilation"),
        (nn.Sequential(nn.Conv2d(3, 8, 3, stride=(1, 2))), "one stride"),
        (nn.Sequential(nn.Conv2d(3, 8, 3, bias=False)), "has no bias and no batch norm"),
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), "has a bias and batch norm"),
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.LeakyReLU(0.2)), "negative_slope"),
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.ReLU()), "'2'.*activation"),
        (nn.Sequential(nn.MaxPool2d(3, ceil_mode=True)), "ceil_mode"),
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 2)), "without an nn.Flatten"),
        (nn.Sequential(nn.Flatten(), nn.Linear(8, 2), nn.Conv2d(3, 8, 3)), "follows a fully connected"),
        (nn.Sequential(nn.AdaptiveAvgPool2d(1)), "'0' AdaptiveAvgPool2d.*no notation"),
        (nn.Sequential(nn.ModuleList([nn.ReLU()])), "not a chain"),
    ],
)
def test_describe_names_the_layer_the_notation_cannot_express(model, complaint):
    with pytest.raises(ValueError, match=complaint):
        describe(model)


@pytest.mark.parametrize(
    "text, token, reason",
    [
        ("conv 5x5x6 tahn | pool max 2", "tahn", "did you mean tanh"),
        ("conv 5x5x6 | poll max 2", "poll", "unknown layer"),
        ("conv 5x5 | fc 10", "5x5", "KxKxN"),
        ("conv 5x5x0", "5x5x0", "KxKxN"),
        ("conv", "conv", "needs the filter size"),
        ("conv 3x3x4 s0", "s0", "stride must be at least 1"),
        ("conv 3x3x4 s1 s2", "s2", "second stride"),
        ("conv 3x3x4 relu tanh", "tanh", "second activation"),
        ("pool mean 2", "mean", "unknown pooling"),
        ("pool max two", "two", "window"),
        ("pool max 2 p2", "p2", "more than half the window"),
        ("pool l2 3 p1", "p1", "unknown pool option"),
        ("fc ten", "ten", "positive number"),
        ("fc 10 bn bn", "bn", "second batch norm"),
        ("dropout 1.5", "1.5", r"\[0, 1\)"),
        ("dropout 0.5 0.2", "0.2", "only a probability"),
        ("fc 10 | conv 3x3x4", "conv", "cannot follow fc"),
        ("conv 5x5x6 | pool max 2 | conv 15x15x16", "15x15x16", "does not fit its 14x14 input"),
        ("conv 3x3x4 || fc 2", "|", "empty stage"),
        ("fc 2 |", "|", "empty stage"),
    ],
)
def test_errors_point_at_the_offending_token(text, token, reason):
    with pytest.raises(DescriptionError, match=reason) as caught:
        build_network(text, input_size=32)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.token == token
    column = error.start + 1
    assert text[error.start : error.end] == token
    message_line, description_line, caret_line = str(error).split("\n")
    assert f"'{token}' at column {column}" in message_line
    assert description_line == f"  {text}"
    assert caret_line == "  " + " " * error.start + "^" * len(token)


def test_errors_in_a_multi_line_description_give_line_and_column():
    text = "conv 5x5x6 tanh | pool avg 2\n| conv 5x5x16 tanh | pool avg 2\n| fc 120 tahn | fc 10"
    with pytest.raises(DescriptionError) as caught:
        build_network(text)
    message_line, description_line, caret_line = str(caught.value).split("\n")
    assert "'tahn' at line 3, column 10" in message_line
    assert description_line == "  | fc 120 tahn | fc 10"
    assert caret_line == "  " + " " * 9 + "^^^^"


def test_an_empty_description_is_refused_with_an_example():
    with pytest.raises(ValueError, match="description is empty; write stages such as 'conv 5x5x6"):
        build_network("  \n ")


def test_network_sizes_must_be_positive_integers():
    with pytest.raises(ValueError, match="in_channels"):
        build_network(LENET_DESCRIPTION, in_channels=0)
    with pytest.raises(ValueError, match="input height"):
        build_network(LENET_DESCRIPTION, input_size=(0, 32))
