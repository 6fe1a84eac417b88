"""The models a server runs, by id: chosen per request, predicted one after the other or batched."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mnist_zoo.errors import MnistZooError
from mnist_zoo.web.batching import BatchingWorker, ZooClosedError
from mnist_zoo.web.models import DEFAULT_TOP_K, ServedModel


class UnknownModelError(MnistZooError):
    """A request named a model id that is not among those served."""


@dataclass
class Zoo:
    """The served models by id, in the order the page shows them, and the runs left out with the reason."""

    models: dict[str, ServedModel]
    skipped: list[str] = field(default_factory=list)
    worker: BatchingWorker | None = field(default=None, repr=False)
    closed: bool = field(default=False, repr=False)

    def select(self, model_id: str | None) -> list[ServedModel]:
        """All models (None), or the one with this id.

        Raises:
            UnknownModelError: no served model has this id.
        """
        if model_id is None:
            return list(self.models.values())
        if model_id not in self.models:
            served = ", ".join(self.models) or "none"
            raise UnknownModelError(f"no served model has the id {model_id!r}; served: {served}")
        return [self.models[model_id]]

    def predict(self, image: np.ndarray, model_id: str | None = None, top_k: int = DEFAULT_TOP_K) -> list[dict]:
        """Every selected model's top-k for one 28x28 uint8 image, one model after the other."""
        return [model.predict(image, top_k) for model in self.select(model_id)]

    async def predict_batched(self, image: np.ndarray, model_id: str | None = None,
                              top_k: int = DEFAULT_TOP_K) -> list[dict]:
        """As `predict`, for a server: through the `BatchingWorker`, which shares calls among concurrent requests."""
        import asyncio

        models = self.select(model_id)
        self.start()
        answers = await asyncio.wrap_future(self.worker.submit(image, models))
        return [model.record(row, top_k, milliseconds, batch_size)
                for model, (row, milliseconds, batch_size) in zip(models, answers)]

    def start(self) -> None:
        """Starts the batching worker of `predict_batched` (done by its first call otherwise).

        Raises:
            ZooClosedError: the zoo was closed: a request arriving during a shutdown must not
                start a new thread that nothing would stop.
        """
        if self.closed:
            raise ZooClosedError("the server is shutting down; its models no longer answer")
        if self.worker is None:
            self.worker = BatchingWorker(list(self.models.values()))

    def close(self) -> None:
        """Stops the batching worker for good (a server's shutdown): later requests are refused."""
        self.closed = True
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close()
