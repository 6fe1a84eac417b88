"""The web application: the drawing page, GET /api/models and POST /api/predict, on Starlette."""

from __future__ import annotations

import contextlib
from pathlib import Path

from mnist_zoo.errors import DataError
from mnist_zoo.serve import inputs
from mnist_zoo.serve.zoo import UnknownModelError, Zoo

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Request bodies above this are refused with 413: ample for a phone photo, small for memory."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, declared (Content-Length) or streamed."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        from starlette.exceptions import HTTPException

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = HTTPException(413, f"request body over the limit of {self.max_bytes:,} bytes; "
                                       "send a smaller picture")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _error_response(413, too_large.detail)(scope, receive, send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the endpoint's read, so the app's handler answers it as a 413.
                    raise too_large
            return message

        await self.app(scope, limited_receive, send)


def _error_response(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def create_app(zoo: Zoo, max_body_bytes: int = MAX_BODY_BYTES, allowed_hosts: list[str] | None = None):
    """The Starlette application serving `zoo`.

    Args:
        zoo: the opened models.
        max_body_bytes: the largest request body accepted.
        allowed_hosts: Host header values answered (None: any); a server bound to the loopback
            answers only its own names, so that a web page elsewhere cannot reach it by DNS rebinding.

    Returns:
        An ASGI application.
    """
    from starlette.applications import Starlette
    import asyncio
    import os
    from concurrent.futures import ThreadPoolExecutor
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    # Pictures are prepared on as many threads as there are cores: more would only take turns
    # holding the interpreter, and slow the model calls down with them.
    preparing = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="mnist-zoo prepare")

    async def prepared(function, *args):
        return await asyncio.get_running_loop().run_in_executor(preparing, function, *args)

    async def page(request):
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def list_models(request):
        return JSONResponse({"models": [model.describe() for model in zoo.models.values()],
                             "top_k": inputs.DEFAULT_TOP_K, "max_top_k": inputs.MAX_TOP_K,
                             "max_body_bytes": max_body_bytes})

    async def predict(request):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        query = request.query_params
        model_id, top_k = query.get("model"), query.get("top_k")
        if content_type == "application/json":
            body = await request.body()
            image, json_model, json_top_k = await prepared(inputs.parse_json, body)
            model_id, top_k = json_model or model_id, json_top_k if top_k is None else inputs.top_k_from(top_k)
        else:
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
            top_k = inputs.top_k_from(top_k)
        predictions = await zoo.predict_batched(image, inputs.model_id_from(model_id), top_k)
        return JSONResponse({"pixels": image.ravel().tolist(), "predictions": predictions})

    async def http_error(request, error: HTTPException):
        return _error_response(error.status_code, str(error.detail))

    async def bad_request(request, error: DataError):
        return _error_response(400, str(error))

    async def unknown_model(request, error: UnknownModelError):
        return _error_response(404, str(error))

    async def server_error(request, error: Exception):
        # The traceback goes to the server's terminal (uvicorn logs it), never into the page.
        return _error_response(500, f"internal error ({type(error).__name__}); see the server's terminal")

    @contextlib.asynccontextmanager
    async def lifespan(application):
        zoo.start()  # the prediction thread, its joint call traced before the first request
        yield
        zoo.close()
        preparing.shutdown()

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    application = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/models", list_models, methods=["GET"]),
            Route("/api/predict", predict, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, DataError: bad_request, UnknownModelError: unknown_model,
                            Exception: server_error},
    )
    return BodyLimit(application, max_body_bytes)
