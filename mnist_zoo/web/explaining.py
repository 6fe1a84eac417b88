"""POST /api/explain: one drawing's integrated gradients, Grad-CAM and feature maps, for one Keras model."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np

from mnist_zoo.errors import DataError

MAP_CHANNELS = 16
"""Channels per layer sent to the page: a 4x4 grid reads at a glance beside a card."""


class Explainer:
    """A served Keras model's float32 logits copy (`explanations.network`), made once, used by one request at a time.

    Args:
        served: the `ServedModel`; its classifier must hold a Keras model.

    Raises:
        DataError: the model runs outside Keras (an export or an ensemble): no gradients to take.
    """

    def __init__(self, served):
        from mnist_zoo.explanations.attribution import last_convolution
        from mnist_zoo.explanations.features import map_layers
        from mnist_zoo.explanations.network import explainable_model

        keras_model = getattr(served.classifier, "model", None)
        if keras_model is None:
            raise DataError(f"model {served.id!r} runs in {served.classifier.kind}, outside Keras: it has no "
                            "gradients or layers to explain; explain a .keras model")
        self.served = served
        self.model, self.note = explainable_model(keras_model)
        self.convolution = last_convolution(self.model)
        self.map_layers = map_layers(self.model)
        self.lock = threading.Lock()

    def explain(self, image: np.ndarray) -> dict:
        """What the page shows under the card for one 28x28 uint8 image (what `mnist-zoo explain` computes)."""
        from mnist_zoo.explanations import attribution
        from mnist_zoo.explanations.features import feature_maps
        from mnist_zoo.explanations.network import as_images, model_inputs

        try:
            return self._explain(image)
        except ValueError as error:  # a foreign model without gradients from its input
            raise DataError(f"model {self.served.id!r}: {error}") from None

    def _explain(self, image: np.ndarray) -> dict:
        from mnist_zoo.explanations import attribution
        from mnist_zoo.explanations.features import feature_maps
        from mnist_zoo.explanations.network import as_images, model_inputs

        with self.lock:
            start = time.perf_counter()
            probabilities = self.served.classifier.probabilities(image[None])[0]
            order = np.argsort(-probabilities)
            inputs = model_inputs(self.model, image[None])
            answer = int(order[0])
            integrated = attribution.integrated_gradients(self.model, inputs, np.array([answer]))[0]
            cam = None
            if self.convolution is not None:
                cam = attribution.grad_cam(self.model, inputs, np.array([answer]), self.convolution)[0]
            maps = feature_maps(self.model, inputs) if self.map_layers else []
            milliseconds = 1000 * (time.perf_counter() - start)
        names = self.served.class_names
        return {
            "model": self.served.id,
            "prediction": names[answer], "class_index": answer, "probability": float(probabilities[answer]),
            "runner_up": names[int(order[1])], "runner_up_index": int(order[1]),
            "baseline": "black image",
            "integrated_gradients": as_images(integrated.attributions)[0].ravel().tolist(),
            "completeness_error": integrated.completeness_error, "complete": integrated.complete,
            "grad_cam": None if cam is None else cam.ravel().tolist(),
            "grad_cam_layer": None if self.convolution is None else self.convolution.name,
            "feature_maps": [_layer_record(layer) for layer in maps],
            "note": self.note,
            "milliseconds": round(milliseconds, 1),
        }


def _layer_record(layer) -> dict:
    maps = layer.maps[0]
    height, width, channels = maps.shape
    return {"layer": layer.name, "kind": layer.kind, "shape": [height, width, channels],
            "channels_shown": min(channels, MAP_CHANNELS), "png": maps_png(maps[..., :MAP_CHANNELS])}


def maps_png(maps: np.ndarray) -> str:
    """A layer's maps (h, w, c) as one PNG data URL: a grid, 4 across, 1-pixel gaps, magma on one scale.

    The browser scales it up with `image-rendering: pixelated`, so the PNG stays a few kilobytes.
    """
    import matplotlib
    from PIL import Image

    height, width, channels = maps.shape
    columns = min(channels, 4)
    rows = -(-channels // columns)
    signed = maps.min() < 0
    limit = float(np.abs(maps).max()) or 1.0
    scaled = (maps / limit + 1) / 2 if signed else maps / limit
    colours = matplotlib.colormaps["RdBu_r" if signed else "magma"](np.clip(scaled, 0, 1))[..., :3]
    grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1, 3), 255, np.uint8)
    for channel in range(channels):
        top, left = (channel // columns) * (height + 1), (channel % columns) * (width + 1)
        grid[top:top + height, left:left + width] = np.round(255 * colours[:, :, channel]).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grid, mode="RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
