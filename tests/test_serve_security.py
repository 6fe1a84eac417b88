"""The page's server against a hostile client: other origins, odd bodies, floods, slow clients and its own shutdown."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest

from mnist_zoo.errors import DataError
from tests.skips import import_or_skip

import_or_skip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from mnist_zoo.web import guards, inputs  # noqa: E402
from mnist_zoo.web.app import create_app  # noqa: E402
from mnist_zoo.web.server import allowed_hosts, bind, uvicorn_config, url_of  # noqa: E402
from mnist_zoo.web.batching import BatchingWorker, ZooClosedError  # noqa: E402
from mnist_zoo.web.discovery import open_zoo  # noqa: E402
from mnist_zoo.web.zoo import Zoo  # noqa: E402

BLANK_JSON = json.dumps({"pixels": [0] * 784}).encode()


@pytest.fixture
def empty_app():
    """An app serving no model: every guard stands before the models, so none is needed to test it."""
    return create_app(Zoo({}))


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Zoo({})), base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory, tiny_runs):
    from tests.helpers import copy_runs

    folder = tmp_path_factory.mktemp("security-runs")
    copy_runs(tiny_runs, folder, models=["linear"])
    zoo = open_zoo([], folder)
    yield zoo
    zoo.close()


# ----------------------------------------------------------------------------- other sites


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},  # a sandboxed frame or a file:// page
    {"Origin": "http://127.0.0.1:9999"},  # another server on this machine is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "cross-site"},
])
def test_a_post_from_another_site_is_refused_before_its_body_is_read(client, headers):
    response = client.post("/api/predict", content=BLANK_JSON, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 403, response.text
    assert "refused" in response.json()["error"]


@pytest.mark.parametrize("headers", [
    {},  # curl, a script: no browser, no Origin
    {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"},  # the page itself
    {"Sec-Fetch-Site": "none"},
])
def test_the_page_itself_and_clients_outside_a_browser_are_answered(client, headers):
    response = client.post("/api/predict", content=BLANK_JSON, headers={"Content-Type": "application/json", **headers})
    assert response.status_code != 403, response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "", "application/pdf",
                                          "text/html; charset=utf-8"])
def test_only_the_documented_content_types_are_taken(client, content_type):
    # text/plain and form-encoded bodies are what any page may POST cross-origin without asking.
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/predict", content=b"\x89PNG\r\n\x1a\n", headers=headers)
    assert response.status_code == 415, response.text
    assert "is not accepted" in response.json()["error"]


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/models", "/api/nothing"])
def test_every_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_errors_from_the_guards_carry_them_too(client):
    response = client.post("/api/predict", content=b"x", headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and response.headers["x-content-type-options"] == "nosniff"


# ----------------------------------------------------------------------------- host names


@pytest.mark.parametrize("host, answered", [
    ("127.0.0.1:8000", True), ("localhost", True), ("[::1]:8000", True), ("[::1]", True), ("LOCALHOST:8000", True),
    ("127.0.0.2:8000", False), ("evil.example", False), ("[::1].evil.example", False), ("[::1]:80x", False),
    ("127.0.0.1.nip.io", False), ("127.0.0.1:", False), ("", False),
])
def test_the_host_check_reads_ipv6_names_and_ports(empty_app, host, answered):
    app = guards.SecurityHeaders(guards.HostCheck(empty_app, ["127.0.0.1", "localhost", "::1"]))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        response = client.get("/api/models", headers={"Host": host})
    assert (response.status_code == 200) == answered, (host, response.text)


@pytest.mark.parametrize("host, address, expected", [
    ("127.1", "127.0.0.1", ["127.0.0.1", "::1", "localhost"]),  # a short name of the loopback: checked as one
    ("localhost", "127.0.0.1", ["127.0.0.1", "::1", "localhost"]),
    ("127.0.0.2", "127.0.0.2", ["127.0.0.1", "127.0.0.2", "::1", "localhost"]),
    ("::1", "::1", ["127.0.0.1", "::1", "localhost"]),
    ("0.0.0.0", "0.0.0.0", None),  # every interface: any name (the command warns)
])
def test_the_names_answered_follow_the_address_bound(host, address, expected):
    try:
        sock = bind(host, 0)
    except Exception as error:  # a machine without IPv6 on its loopback
        pytest.skip(f"cannot bind {host} here: {error}") if host == "::1" else pytest.fail(str(error))
    try:
        assert sock.getsockname()[0] == address
        assert allowed_hosts(sock) == expected
        port = sock.getsockname()[1]
        shown = {"0.0.0.0": "127.0.0.1"}.get(address, address)
        assert url_of(sock) == (f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/")
    finally:
        sock.close()


# ----------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("depth", [5, 990, 5000])
def test_deeply_nested_json_is_a_400_before_it_is_parsed(client, depth):
    body = b'{"pixels": ' + b"[" * depth + b"]" * depth + b"}"
    start = time.process_time()
    response = client.post("/api/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert f"nested {depth + 1} levels deep" in response.json()["error"]
    assert time.process_time() - start < 1


def test_brackets_hidden_in_a_string_cannot_hide_the_nesting():
    # Closing brackets inside a string would cancel the opening ones if strings were not skipped.
    body = b'{"model": "' + b"]" * 2000 + b'", "pixels": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    with pytest.raises(DataError, match="nested 2001 levels deep"):
        inputs.check_json_shape(body)
    inputs.check_json_shape(b'{"model": "[[[[[[[[", "pixels": [[0]]}')  # brackets in a string are not nesting


@pytest.mark.parametrize("body", [b'"' + b'\\"' * 100_000, b'"' * 200_000, b"\\" * 200_000 + b'"'])
def test_the_nesting_scan_takes_linear_time_on_unterminated_strings(body):
    start = time.process_time()
    inputs.check_json_shape(body)
    assert time.process_time() - start < 0.5


def test_json_over_its_own_limit_is_refused_unread(client):
    body = b'{"pixels": [' + b"0," * 200_000 + b"0]}"
    response = client.post("/api/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "more than the 262,144 accepted" in response.json()["error"]


@pytest.mark.parametrize("body, content_type", [
    (b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\nab", "multipart/form-data; boundary=x"),
    (b"not multipart at all", "multipart/form-data"),
    (b"\xff\xfe{\x00", "application/json"),
    (b'{"pixels": [' + b"9" * 5000 + b"]}", "application/json"),  # an integer over Python's digit limit
    (b'{"pixels": [1e999]}', "application/json"),
])
def test_malformed_bodies_are_4xx_never_500(client, body, content_type):
    response = client.post("/api/predict", content=body, headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


# ----------------------------------------------------------------------------- floods


def test_pictures_beyond_the_waiting_room_get_503_and_the_rest_are_answered(monkeypatch):
    import os

    import httpx2 as httpx  # Starlette's TestClient's own HTTP client (the test extra)

    release = threading.Event()

    def slow_picture(data, name="upload"):
        release.wait(30)
        raise DataError(f"{name}: blank image, no digit found")

    monkeypatch.setattr(inputs, "image_from_picture", slow_picture)
    from mnist_zoo.web import app as app_module

    capacity = (os.cpu_count() or 2) + app_module.MAX_WAITING_PICTURES
    application = create_app(Zoo({}))

    async def flood():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            requests = [asyncio.create_task(client.post("/api/predict", content=b"png",
                                                        headers={"Content-Type": "image/png"}))
                        for _ in range(capacity + 5)]
            await asyncio.sleep(0.5)  # every request has reached the waiting room or been turned away
            release.set()
            return [response.status_code for response in await asyncio.gather(*requests)]

    statuses = asyncio.run(flood())
    assert statuses.count(503) == 5 and statuses.count(400) == capacity, statuses


def test_a_cancelled_request_does_not_stop_the_prediction_thread(tiny_zoo):
    models = list(tiny_zoo.models.values())
    worker = BatchingWorker(models)
    try:
        image = np.zeros((28, 28), np.uint8)
        with worker._condition:  # the thread cannot take the batch until both are queued
            gone = worker.submit(image, models)
            kept = worker.submit(image, models)
            assert gone.cancel()  # the client went away
        assert len(kept.result(timeout=30)) == len(models)
        with pytest.raises(CancelledError):
            gone.result()
        assert len(worker.submit(image, models).result(timeout=30)) == len(models)  # the thread is alive
    finally:
        worker.close()


def test_a_request_after_the_shutdown_is_a_503_and_starts_no_thread(tiny_zoo):
    own = Zoo(dict(tiny_zoo.models))
    own.start()
    own.close()
    with pytest.raises(ZooClosedError):
        own.start()
    assert own.worker is None
    response = client_post_after_close(own)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert own.worker is None


def client_post_after_close(zoo):
    """A request to a closed zoo's app, without the lifespan (which would refuse to start it)."""
    import httpx2 as httpx  # Starlette's TestClient's own HTTP client (the test extra)

    async def post():
        transport = httpx.ASGITransport(app=create_app(zoo))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            return await client.post("/api/predict", content=BLANK_JSON, headers={"Content-Type": "application/json"})

    return asyncio.run(post())


# ----------------------------------------------------------------------------- slow clients, a real server


@pytest.fixture
def real_server():
    """uvicorn on 127.0.0.1 in a thread, with deadlines of half a second: (host, port)."""
    import uvicorn

    app = create_app(Zoo({}), body_seconds=0.5)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn_config(app, header_seconds=0.5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield sock.getsockname()[:2]
    server.should_exit = True
    thread.join(30)
    sock.close()


def closed_within(connection: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing `connection` within `seconds`; None if it stayed open."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    return received


@pytest.mark.slow
def test_a_client_that_never_finishes_its_headers_is_disconnected(real_server):
    with socket.create_connection(real_server, timeout=5) as slow:
        slow.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        time.sleep(0.3)
        slow.sendall(b"X-Trickle: 1\r\n")  # bytes still trickling in do not restart the clock
        assert closed_within(slow, 3) == b""
    with socket.create_connection(real_server, timeout=5) as fine:  # the server goes on answering
        fine.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert closed_within(fine, 5).startswith(b"HTTP/1.1 200")


@pytest.mark.slow
def test_a_body_that_comes_too_slowly_is_a_408(real_server):
    with socket.create_connection(real_server, timeout=5) as slow:
        slow.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 1000\r\n\r\n" + b"x" * 10)
        answer = closed_within(slow, 5) or b""
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in answer


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_json_in_another_encoding_cannot_slip_past_the_nesting_check(client, encoding):
    # In UTF-16 an escaped quote's NUL byte hid the brackets that followed from the byte scan,
    # while json.loads, which guesses UTF-16 and UTF-32 itself, parsed them: a RecursionError, 500.
    text = '{"model": "\\"", "pixels": ' + "[" * 5000 + "]" * 5000 + "}"
    response = client.post("/api/predict", content=text.encode(encoding),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "must be UTF-8" in response.json()["error"], response.text


def test_uploads_reach_only_the_decoders_browsers_send():
    # A tiled TIFF declaring one pixel can make libtiff inflate gigabytes: the page takes no TIFF.
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buffer, format="TIFF")
    with pytest.raises(DataError, match=r"not a picture in one of PNG, JPEG, GIF, WebP, BMP"):
        inputs.image_from_picture(buffer.getvalue())


def test_a_jpeg_of_many_scans_is_refused_before_decoding(monkeypatch):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buffer, format="JPEG", progressive=True)
    ordinary = buffer.getvalue()
    assert 1 < ordinary.count(b"\xff\xda") <= inputs.MAX_JPEG_SCANS
    with pytest.raises(DataError, match="blank image"):  # an ordinary progressive JPEG is decoded
        inputs.image_from_picture(ordinary)
    # Scans repeated before the end marker: each would make libjpeg walk the picture again.
    scan = ordinary[ordinary.rindex(b"\xff\xda"):-2]
    hostile = ordinary[:-2] + scan * 200 + b"\xff\xd9"
    monkeypatch.setattr("mnist_zoo.inference.pictures.prepare_picture",
                        lambda *args, **kwargs: pytest.fail("decoded"))
    with pytest.raises(DataError, match=r"a JPEG of 2\d\d scans, more than the 100 accepted"):
        inputs.image_from_picture(hostile)
