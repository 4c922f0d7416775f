"""The lecture's mathematics as plain functions on tensors."""

from cnnkit.ops.shapes import FieldStep, Layer, output_size, receptive_field, resolve_padding, same_padding
