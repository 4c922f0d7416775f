"""Shape arithmetic: the formulas equal what the operations return (hypothesis), receptive fields."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.ops import Layer, avg_pool, cross_correlation, max_pool, output_size, receptive_field, same_padding


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4),
    padding=st.one_of(st.integers(0, 4), st.sampled_from(["valid", "same", "full"])), dilation=st.integers(1, 3),
)
def test_convolution_output_size(n, kernel, stride, padding, dilation):
    x, k = torch.randn(1, 1, n), torch.randn(1, 1, kernel)
    try:
        expected = output_size(n, kernel, stride, padding, dilation)
    except ValueError:
        with pytest.raises(ValueError):
            cross_correlation(x, k, stride=stride, padding=padding, dilation=dilation)
        return
    assert cross_correlation(x, k, stride=stride, padding=padding, dilation=dilation).shape[-1] == expected
    if padding == "same":
        assert expected == -(-n // stride)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 30), size=st.integers(1, 6), stride=st.integers(1, 4), data=st.data(), ceil_mode=st.booleans())
def test_pooling_output_size(n, size, stride, data, ceil_mode):
    padding = data.draw(st.integers(0, size // 2))
    x = torch.randn(1, 1, n)
    try:
        expected = output_size(n, size, stride, padding, ceil_mode=ceil_mode)
    except ValueError:
        with pytest.raises(ValueError):
            max_pool(x, size, stride, padding, ceil_mode)
        return
    assert max_pool(x, size, stride, padding, ceil_mode).shape[-1] == expected
    assert avg_pool(x, size, stride, padding, ceil_mode).shape[-1] == expected


def test_lecture_examples():
    assert output_size(32, 5) == 28  # LeNet's first layer
    assert output_size(227, 11, 4) == 55  # AlexNet conv1
    assert output_size(224, 7, 2, 3) == 112  # ResNet stem
    assert output_size(7, 3, 1, 1) == 7
    assert same_padding(7, 3) == (1, 1)
    assert same_padding(8, 4) == (1, 2)  # the odd zero goes after the input
    assert same_padding(10, 3, stride=2) == (0, 1)


def test_receptive_field_of_stacked_3x3_convolutions_is_that_of_one_large_kernel():
    three = receptive_field([Layer(3, padding=1)] * 3, 32)
    assert [step.receptive_field for step in three] == [3, 5, 7]  # VGG's argument
    assert three[-1].size == 32 and three[-1].jump == 1


def test_receptive_field_jump_and_start_through_strides():
    steps = receptive_field([Layer(7, 2, 3), Layer(3, 2, 1), Layer(3, 1, 2, dilation=2)], 224)
    assert [(s.size, s.jump, s.receptive_field) for s in steps] == [(112, 2, 7), (56, 4, 11), (56, 4, 27)]
    assert steps[0].start == 0.5  # first output centred on the first pixel's centre
    lenet = receptive_field([Layer(5), Layer(2, 2), Layer(5), Layer(2, 2), Layer(5)], 32)
    assert lenet[-1].size == 1 and lenet[-1].receptive_field == 32 and lenet[-1].start == 16.0


def test_impossible_layer_is_refused_by_name():
    with pytest.raises(ValueError, match="conv3: kernel 5 .* larger than the padded input 4"):
        receptive_field([Layer(5, name="conv1"), Layer(2, 2, name="pool1"), Layer(5, name="conv3")], 12)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        output_size(10, 3, 0)
