"""The thread that runs the served models: concurrent requests share one call per model."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np

from mnist_zoo.errors import MnistZooError
from mnist_zoo.web.models import ServedModel


class ZooClosedError(MnistZooError):
    """A request came after the server began shutting down: its models no longer run."""


MAX_BATCH = 64


class JointKerasCall:
    """All the served Keras models in one traced TensorFlow function: one call runs them all.

    Each call into TensorFlow costs a fixed overhead of Python binding and graph dispatch (most
    of a small model's time); a drawing shown to every model pays it once instead of per model.
    Each model runs its own `Predictor` graph inside, so its numbers are those of `predict`.
    """

    def __init__(self, models: list[ServedModel]):
        import tensorflow as tf

        self.models = models
        self.ids = [model.id for model in models]
        predictors = [model.classifier.predictor for model in models]
        self._predictors = predictors
        self._call = tf.function(lambda images: [predictor.forward(images) for predictor in predictors],
                                 input_signature=[tf.TensorSpec((None, 28, 28), tf.uint8)])
        if models:
            self._call(np.zeros((1, 28, 28), np.uint8))  # traced now, not on the first request

    def probabilities(self, images: np.ndarray) -> list[np.ndarray]:
        """Each model's class probabilities (n, 10) for uint8 images (n, 28, 28), in `models` order."""
        from mnist_zoo.inference.predictor import to_probabilities

        outputs = self._call(images)
        return [to_probabilities(output.numpy(), predictor.output_kind, predictor.output_dtype)
                for output, predictor in zip(outputs, self._predictors)]


class BatchingWorker:
    """The thread that runs the models for a server: the requests waiting when it is free share one call per model.

    A call costs nearly the same for one image as for a few (mostly the runtime's per-call
    overhead), so concurrent requests share calls instead of queueing for one each. One thread
    for all models, calling them one after the other: model threads of their own would only
    compete for the same cores, and each call would take several times as long.
    """

    def __init__(self, models: list[ServedModel], max_batch: int = MAX_BATCH):
        self.max_batch = max_batch
        self.joint = JointKerasCall([model for model in models if model.classifier.kind == "keras"])
        self._waiting: list[tuple[np.ndarray, list[ServedModel], Future]] = []
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="mnist-zoo predict", daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray, models: list[ServedModel]) -> Future:
        """Queues one 28x28 uint8 image for `models`; the future gets [(probabilities, milliseconds, batch size)]."""
        future: Future = Future()
        with self._condition:
            if self._closed:
                raise ZooClosedError("the server is shutting down; its models no longer answer")
            self._waiting.append((image, models, future))
            self._condition.notify()
        return future

    def _serve(self) -> None:
        while True:
            with self._condition:
                while not self._waiting and not self._closed:
                    self._condition.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            # A request whose client went away has its future cancelled: it is left out, as
            # setting the result of a cancelled future raises (and would end this thread).
            batch = [item for item in batch if item[2].set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                answers = self._predict(batch)
            except Exception as error:  # the requests answer 500 with it; the worker goes on
                for *_, future in batch:
                    future.set_exception(error)
                continue
            for (*_, future), answer in zip(batch, answers):
                future.set_result(answer)

    def _predict(self, batch) -> list[list[tuple[np.ndarray, float, int]]]:
        """For each request of `batch`, its models' answers, in the order it named them."""
        found: list[dict[str, tuple]] = [{} for _ in batch]
        models = {model.id: model for _, wanted, _ in batch for model in wanted}
        if len(self.joint.models) > 1 and all(set(self.joint.ids) <= {model.id for model in wanted}
                                              for _, wanted, _ in batch):
            start = time.perf_counter()
            joint_rows = self.joint.probabilities(np.stack([image for image, _, _ in batch]))
            milliseconds = 1000 * (time.perf_counter() - start)
            for model_id, rows in zip(self.joint.ids, joint_rows):
                for index, row in enumerate(rows):
                    found[index][model_id] = (row, milliseconds, len(batch))
                del models[model_id]
        for model in models.values():
            asking = [index for index, (_, wanted, _) in enumerate(batch) if model in wanted]
            with model.lock:
                start = time.perf_counter()
                rows = model.classifier.probabilities(np.stack([batch[index][0] for index in asking]))
                milliseconds = 1000 * (time.perf_counter() - start)
            for index, row in zip(asking, rows):
                found[index][model.id] = (row, milliseconds, len(asking))
        return [[answers[model.id] for model in wanted] for (_, wanted, _), answers in zip(batch, found)]

    def close(self) -> None:
        """Answers what is waiting, then stops the thread."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        self._thread.join()
