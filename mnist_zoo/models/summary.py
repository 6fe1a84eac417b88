"""The layer table of a model: output shapes, parameters and multiply-accumulates of one forward pass."""

from __future__ import annotations

from dataclasses import dataclass

# Keras layers without weights move, select, pool or activate values: they count 0 MACs. These
# weightless Keras layers multiply tensors with each other, so their cost is not known here.
_WEIGHTLESS_BUT_MULTIPLYING = ("Multiply", "Dot", "Attention", "AdditiveAttention", "Lambda")


@dataclass(frozen=True)
class LayerSummary:
    """One row of the table."""

    name: str
    kind: str
    output_shape: tuple
    parameters: int
    macs: int | None
    """Multiply-accumulates of one forward pass of one image (None: not known for this layer type)."""
    macs_bias_as_input: int | None
    """The course material's convention: each bias counted as one more input (see `layer_macs`)."""


def layer_macs(layer) -> tuple[int | None, int | None]:
    """Multiply-accumulates of `layer` for one image: (standard, course-material convention).

    Standard: Dense in x units; Conv2D out_h x out_w x filters x (k_h x k_w x in_channels).
    The material counts the bias as one extra input per kernel window: Dense (in + 1) x units,
    Conv2D in_channels x (k_h x k_w + 1) x out_h x out_w x filters (its formula, which counts a
    bias per input channel). Keras's layers without weights (pooling, flatten, dropout,
    activations) count 0, and so does BatchNormalization, a scale and shift that folds into the
    weights next to it. Anything else, custom layers included, is (None, None): not guessed.
    """
    kind = type(layer).__name__
    from_keras = type(layer).__module__.startswith("keras.")
    if from_keras and not layer.weights and kind not in _WEIGHTLESS_BUT_MULTIPLYING:
        return 0, 0
    if kind == "Dense":
        inputs, units = int(layer.input.shape[-1]), layer.units
        return inputs * units, (inputs + int(layer.use_bias)) * units
    if kind == "BatchNormalization" and from_keras:
        # At inference it is a fixed scale and shift, which folds into the adjacent layer's weights.
        return 0, 0
    if kind == "Conv2D" and layer.groups == 1:
        kernel_height, kernel_width = layer.kernel_size
        in_channels = int(layer.input.shape[-1])
        _, out_height, out_width, filters = layer.output.shape
        positions = int(out_height) * int(out_width) * int(filters)
        return (positions * kernel_height * kernel_width * in_channels,
                in_channels * (kernel_height * kernel_width + int(layer.use_bias)) * positions)
    return None, None


def summarize(model) -> list[LayerSummary]:
    """One `LayerSummary` per layer of a built functional or sequential Keras model."""
    rows = []
    for layer in model.layers:
        macs, macs_bias = layer_macs(layer)
        rows.append(LayerSummary(
            name=layer.name,
            kind=type(layer).__name__,
            output_shape=tuple(int(size) for size in layer.output.shape[1:]),
            parameters=int(layer.count_params()),
            macs=macs,
            macs_bias_as_input=macs_bias,
        ))
    return rows


def forward_macs(model) -> int | None:
    """The standard multiply-accumulate count of one image's forward pass (None: a layer is not countable)."""
    return totals(summarize(model))["macs"]


def require_forward_macs(model) -> int:
    """`forward_macs`, for a model mnist-zoo builds: every layer must have a MAC rule.

    Raises:
        ValueError: naming the layers without a rule in `layer_macs`, and where to add one.
    """
    rows = summarize(model)
    unknown = [f"{row.name} ({row.kind})" for row in rows if row.macs is None]
    if unknown:
        raise ValueError(f"{model.name}: no multiply-accumulate rule for the layer{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)}; add one to mnist_zoo/models/summary.py layer_macs (precision "
                         "'auto' and compare need the count)")
    return totals(rows)["macs"]


def totals(rows: list[LayerSummary]) -> dict:
    """Sums of parameters and MACs; a MAC total is None if any layer's count is unknown."""
    def total(values):
        return None if any(value is None for value in values) else sum(values)

    return {
        "parameters": sum(row.parameters for row in rows),
        "macs": total([row.macs for row in rows]),
        "macs_bias_as_input": total([row.macs_bias_as_input for row in rows]),
    }


# Layers that only reshape, rescale or activate: the course notation (784-256-64-10) leaves them out.
_SILENT_LAYERS = ("InputLayer", "Flatten", "Reshape", "Rescaling", "Activation", "Softmax", "ReLU")
_NOTATION = {"MaxPooling2D": "pool", "AveragePooling2D": "pool", "GlobalAveragePooling2D": "gap",
             "GlobalMaxPooling2D": "gmp", "Dropout": "dropout", "SpatialDropout2D": "dropout",
             "BatchNormalization": "bn", "LayerNormalization": "ln"}


def architecture(model) -> str:
    """The model in the course material's notation: '784-256-64-10', '32c5-pool-64c5-pool-1024-dropout-10'.

    A Conv2D with f filters of k x k is 'fck'; a Dense is its units, after the input's size when
    it comes first; a layer of another kind is its class name in lower case.
    """
    parts = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in _SILENT_LAYERS:
            continue
        if kind == "Dense":
            if not parts:
                parts.append(str(int(layer.input.shape[-1])))
            parts.append(str(layer.units))
        elif kind == "Conv2D":
            height, width = layer.kernel_size
            parts.append(f"{layer.filters}c{height}" if height == width else f"{layer.filters}c{height}x{width}")
        else:
            parts.append(_NOTATION.get(kind, kind.lower()))
    return "-".join(parts)
