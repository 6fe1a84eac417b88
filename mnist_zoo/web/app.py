"""The web application: the drawing page, GET /api/models, POST /api/predict and /api/explain, on Starlette."""

from __future__ import annotations

import contextlib
from pathlib import Path

from mnist_zoo.errors import DataError, MnistZooError
from mnist_zoo.web import guards, inputs
from mnist_zoo.web.batching import ZooClosedError
from mnist_zoo.web.zoo import UnknownModelError, Zoo

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = guards.MAX_BODY_BYTES
PICTURE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "application/octet-stream")
"""Content types of a raw picture body. Others are refused with 415: text/plain and form-encoded
bodies are what any web page may send without asking (a 'simple' cross-origin request)."""
MAX_WAITING_PICTURES = 16
"""Pictures waiting for a preparing thread beyond this are answered 503 (busy): each holds up to
MAX_BODY_BYTES, and a queue without an end would hold them all."""
MAX_WAITING_EXPLANATIONS = 4
"""Explanations computing or waiting beyond this are answered 503: each takes tens to hundreds of
model calls (integrated gradients), a page asks again when the drawing changes, and a flood of
them must not starve the predictions."""


class ServerBusyError(MnistZooError):
    """Too many pictures are waiting to be prepared: answered 503, try again."""


class UnsupportedTypeError(MnistZooError):
    """A request body of a content type the API does not take: answered 415."""


def _error_response(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def create_app(zoo: Zoo, max_body_bytes: int = MAX_BODY_BYTES, allowed_hosts: list[str] | None = None,
               body_seconds: float = guards.BODY_SECONDS):
    """The Starlette application serving `zoo`.

    Args:
        zoo: the opened models.
        max_body_bytes: the largest request body accepted.
        allowed_hosts: Host header names answered (None: any); a server bound to the loopback
            answers only its own names, so that a web page elsewhere cannot reach it by DNS rebinding.
        body_seconds: how long a request's body may take to arrive.

    Returns:
        An ASGI application.
    """
    from starlette.applications import Starlette
    import asyncio
    import os
    from concurrent.futures import ThreadPoolExecutor
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    # Pictures are prepared on as many threads as there are cores: more would only take turns
    # holding the interpreter, and slow the model calls down with them. The semaphore hands the
    # threads work only as they free up, and a bounded number of pictures may wait for them.
    threads = os.cpu_count() or 2
    preparing = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mnist-zoo prepare")
    slots = asyncio.Semaphore(threads)
    waiting = 0

    async def prepared(function, *args):
        nonlocal waiting
        if waiting >= threads + MAX_WAITING_PICTURES:
            raise ServerBusyError(f"{waiting} pictures are being prepared or waiting; try again in a moment")
        waiting += 1
        try:
            async with slots:
                return await asyncio.get_running_loop().run_in_executor(preparing, function, *args)
        finally:
            waiting -= 1

    async def page(request):
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def list_models(request):
        return JSONResponse({"models": [model.describe() for model in zoo.models.values()],
                             "top_k": inputs.DEFAULT_TOP_K, "max_top_k": inputs.MAX_TOP_K,
                             "max_body_bytes": max_body_bytes,
                             "max_picture_pixels": inputs.MAX_PICTURE_PIXELS})

    async def read_image(request):
        """(28x28 image, model id, top_k) from a picture, a multipart upload or JSON pixels."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        query = request.query_params
        model_id, top_k = query.get("model"), query.get("top_k")
        if content_type not in (*PICTURE_TYPES, "multipart/form-data", "application/json"):
            raise UnsupportedTypeError(
                f"Content-Type {content_type or '(none)'!r} is not accepted; send a picture as "
                f"{', '.join(PICTURE_TYPES[:2])} (...), a multipart upload in the field \"image\", or "
                "application/json with 784 pixel values")
        if content_type == "application/json":
            body = await request.body()
            inputs.check_json_shape(body)  # before it is parsed: nesting and size
            image, json_model, json_top_k = await prepared(inputs.parse_json, body)
            return image, json_model or model_id, json_top_k if top_k is None else inputs.top_k_from(top_k)
        if content_type == "multipart/form-data":
            async with request.form(max_files=1, max_fields=8) as form:
                upload = form.get("image")
                if upload is None or isinstance(upload, str):
                    raise DataError('a multipart upload needs the picture in a file field named "image"')
                data, name = await upload.read(), upload.filename or "upload"
                model_id = form.get("model") or model_id
                top_k = form.get("top_k") or top_k
        else:
            data, name = await request.body(), "upload"
        image = await prepared(inputs.image_from_picture, data, name)
        return image, model_id, inputs.top_k_from(top_k)

    async def predict(request):
        image, model_id, top_k = await read_image(request)
        predictions = await zoo.predict_batched(image, inputs.model_id_from(model_id), top_k)
        return JSONResponse({"pixels": image.ravel().tolist(), "predictions": predictions})

    # Explanations run on a thread of their own, one at a time: they take tens to hundreds of
    # model calls, and must never hold the threads that prepare the pictures of predictions.
    explaining_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnist-zoo explain")
    explainers = {}
    explaining = 0

    async def explain(request):
        nonlocal explaining
        from mnist_zoo.web.explaining import Explainer

        if explaining >= MAX_WAITING_EXPLANATIONS:  # before the body is read
            raise ServerBusyError(f"{explaining} explanations are being computed or waiting; try again in a moment")
        explaining += 1
        try:
            image, model_id, _ = await read_image(request)
            model_id = inputs.model_id_from(model_id)
            if model_id is None:
                raise DataError("name the model to explain: ?model=ID or \"model\" in the JSON (GET /api/models lists "
                                "them)")
            (served,) = zoo.select(model_id)
            loop = asyncio.get_running_loop()

            def run():
                if model_id not in explainers:  # one thread: made once
                    explainers[model_id] = Explainer(served)
                return explainers[model_id].explain(image)

            record = await loop.run_in_executor(explaining_thread, run)
        finally:
            explaining -= 1
        return JSONResponse({"pixels": image.ravel().tolist(), **record})

    async def http_error(request, error: HTTPException):
        return _error_response(error.status_code, str(error.detail))

    async def bad_request(request, error: DataError):
        return _error_response(400, str(error))

    async def unknown_model(request, error: UnknownModelError):
        return _error_response(404, str(error))

    async def unsupported_type(request, error: UnsupportedTypeError):
        return _error_response(415, str(error))

    async def busy(request, error: ServerBusyError | ZooClosedError):
        response = _error_response(503, str(error))
        response.headers["Retry-After"] = "1"
        return response

    async def server_error(request, error: Exception):
        # The traceback goes to the server's terminal (uvicorn logs it), never into the page.
        return _error_response(500, f"internal error ({type(error).__name__}); see the server's terminal")

    @contextlib.asynccontextmanager
    async def lifespan(application):
        zoo.start()  # the prediction thread, its joint call traced before the first request
        yield
        zoo.close()
        preparing.shutdown()
        explaining_thread.shutdown()

    application = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/models", list_models, methods=["GET"]),
            Route("/api/predict", predict, methods=["POST"]),
            Route("/api/explain", explain, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, DataError: bad_request, UnknownModelError: unknown_model,
                            UnsupportedTypeError: unsupported_type, ServerBusyError: busy, ZooClosedError: busy,
                            Exception: server_error},
    )
    # Outermost first: every answer gets the security headers; the Host and the origin are
    # checked before the body is read, and the body is bounded in size and time.
    guarded = guards.SameOrigin(guards.BodyLimit(application, max_body_bytes, body_seconds))
    if allowed_hosts:
        guarded = guards.HostCheck(guarded, list(allowed_hosts))
    return guards.SecurityHeaders(guarded)
