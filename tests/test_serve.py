"""mnist-zoo serve: which models it finds, the JSON API (uploads, pixel values, refusals), batching, the CLI."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from mnist_zoo.models.registry import MODELS
from tests.helpers import copy_runs, start_server, stop_server, train_tiny
from tests.skips import import_or_skip

import_or_skip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from mnist_zoo.web.app import create_app  # noqa: E402
from mnist_zoo.web.discovery import open_zoo  # noqa: E402
from mnist_zoo.web.zoo import Zoo  # noqa: E402


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_runs) -> Path:
    """A runs folder holding a finished tiny run of every registry model (copies of the session's)."""
    folder = tmp_path_factory.mktemp("serve-runs")
    copy_runs(tiny_runs, folder)
    return folder


@pytest.fixture(scope="module")
def zoo(runs_dir):
    zoo = open_zoo([], runs_dir)
    yield zoo
    zoo.close()


@pytest.fixture
def own_zoo(zoo):
    """A zoo of its own over the module's opened models: for a test whose app starts and closes its batching
    worker (an app's shutdown closes its zoo), so that no test closes the worker the module's `client` uses."""
    own = Zoo(dict(zoo.models), list(zoo.skipped))
    yield own
    own.close()


@pytest.fixture(scope="module")
def client(zoo):
    with TestClient(create_app(zoo)) as client:  # `with`: runs the lifespan (the batching thread)
        yield client


def digit_png(image: np.ndarray, size: int = 280, mode: str = "RGBA") -> bytes:
    """A test digit drawn as the page sends it: white on black, `size` pixels, PNG."""
    from PIL import Image

    picture = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR).convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def predict_cli_json(model: Path, picture: Path) -> list[dict]:
    result = CliRunner().invoke(cli, ["predict", str(model), str(picture), "--json", "--top-k", "3"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- the models served


def test_models_lists_every_finished_run_with_architecture_parameters_and_test_accuracy(client, runs_dir):
    listing = client.get("/api/models").json()
    models = {model["id"]: model for model in listing["models"]}
    assert sorted(models) == sorted(f"run-{model}" for model in MODELS)
    for name in MODELS:
        model = models[f"run-{name}"]
        metrics = json.loads((runs_dir / f"run-{name}" / "metrics.json").read_text())
        assert model["test_accuracy"] == metrics["test_accuracy"]
        assert model["parameters"] == metrics["parameters"]
        assert model["runtime"] == "keras" and model["dataset"] == "mnist" and model["classes"][7] == "7"
    assert models["run-linear"]["architecture"] == "784-10"
    assert models["run-mlp"]["architecture"] == "784-32-dropout-10"
    assert models["run-cnn"]["architecture"] == "4c3-pool-16-dropout-10"
    assert listing["top_k"] == 3 and listing["max_top_k"] == 10


def test_unfinished_runs_are_left_out_with_the_reason_and_a_file_is_served_once(runs_dir, tmp_path):
    unfinished = tmp_path / "runs" / "half-done"
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text((runs_dir / "run-linear" / "config.yaml").read_text())
    (unfinished / "status.json").write_text('{"status": "interrupted"}')
    linear = runs_dir / "run-linear"
    zoo = open_zoo([linear, linear / "best.keras"], tmp_path / "runs")
    assert list(zoo.models) == ["run-linear"]
    assert zoo.skipped == [f"{unfinished}: not finished (status: interrupted)"]


def test_exports_are_served_in_their_runtime_beside_the_keras_model(runs_dir, tmp_path, small_mnist_dir):
    import_or_skip("ai_edge_litert")
    run = train_tiny(tmp_path / "exported", small_mnist_dir, "mlp")
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "tflite", "--data-dir", str(small_mnist_dir)])
    assert result.exit_code == 0, result.output
    tflite = run / "export" / "model.tflite"
    zoo = open_zoo([run, tflite], None)
    assert list(zoo.models) == ["exported", "exported/model.tflite"]
    export = zoo.models["exported/model.tflite"].describe()
    # The run's config gives the architecture; an export has no accuracy until `evaluate` measures it.
    assert export["runtime"] == "tflite" and export["architecture"] == "784-32-dropout-10"
    assert export["test_accuracy"] is None
    result = CliRunner().invoke(cli, ["evaluate", str(tflite), "--data-dir", str(small_mnist_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "export" / "model.tflite.evaluation.json").read_text())
    assert open_zoo([tflite], None).models["exported/model.tflite"].test_accuracy == report["accuracy"]


def test_a_named_path_without_a_model_is_an_error_and_so_is_nothing_to_serve(tmp_path):
    from mnist_zoo.errors import ModelFileError

    with pytest.raises(ModelFileError, match="no such model file"):
        open_zoo([tmp_path / "missing.keras"], None)
    with pytest.raises(ModelFileError, match="no model to serve"):
        open_zoo([], tmp_path / "no-runs-here")


# ----------------------------------------------------------------------------- predictions


@pytest.mark.parametrize("how", ["raw", "multipart"])
def test_an_uploaded_drawing_gets_the_numbers_predict_gives_for_the_same_file(client, runs_dir, real_mnist,
                                                                              tmp_path, how):
    picture = tmp_path / "drawing.png"
    picture.write_bytes(digit_png(real_mnist.test_images[0]))
    if how == "raw":
        response = client.post("/api/predict", content=picture.read_bytes(), headers={"Content-Type": "image/png"})
    else:
        response = client.post("/api/predict", files={"image": ("drawing.png", picture.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    answer = response.json()
    from mnist_zoo.inference.pictures import prepare_picture

    assert answer["pixels"] == prepare_picture(picture).ravel().tolist()  # the image the models saw
    assert [prediction["model"] for prediction in answer["predictions"]] == sorted(f"run-{m}" for m in MODELS)
    for prediction in answer["predictions"]:
        (expected,) = predict_cli_json(runs_dir / prediction["model"], picture)
        assert prediction["prediction"] == expected["prediction"]
        assert [entry["class"] for entry in prediction["top_k"]] == [entry["class"] for entry in expected["top_k"]]
        np.testing.assert_allclose([entry["probability"] for entry in prediction["top_k"]],
                                   [entry["probability"] for entry in expected["top_k"]], rtol=0, atol=1e-6)


def test_784_pixel_values_are_taken_as_mnist_images_as_a_npy_file_is(client, runs_dir, real_mnist, tmp_path):
    image = real_mnist.test_images[1]
    np.save(tmp_path / "digit.npy", image)
    as_ints = client.post("/api/predict", json={"pixels": image.ravel().tolist(), "top_k": 2})
    as_floats = client.post("/api/predict", json={"pixels": (image / 255.0).tolist(), "model": "run-cnn"})
    assert as_ints.status_code == 200 and as_floats.status_code == 200, (as_ints.text, as_floats.text)
    assert as_ints.json()["pixels"] == image.ravel().tolist()
    (expected,) = predict_cli_json(runs_dir / "run-cnn", tmp_path / "digit.npy")
    cnn = [prediction for prediction in as_ints.json()["predictions"] if prediction["model"] == "run-cnn"][0]
    assert len(cnn["top_k"]) == 2 and cnn["prediction"] == expected["prediction"]
    (only,) = as_floats.json()["predictions"]
    assert only["model"] == "run-cnn" and len(only["top_k"]) == 3
    assert abs(only["top_k"][0]["probability"] - expected["top_k"][0]["probability"]) <= 1e-6


def test_concurrent_requests_share_calls_and_get_the_numbers_they_would_alone(own_zoo, real_mnist):
    zoo = own_zoo
    images = real_mnist.test_images[:12]

    async def together():
        return await asyncio.gather(*(zoo.predict_batched(image) for image in images))

    answers = asyncio.run(together())
    assert max(prediction["batch_size"] for answer in answers for prediction in answer) > 1
    for image, answer in zip(images, answers):
        for batched, alone in zip(answer, zoo.predict(image)):
            assert batched["model"] == alone["model"] and batched["prediction"] == alone["prediction"]
            np.testing.assert_allclose([entry["probability"] for entry in batched["top_k"]],
                                       [entry["probability"] for entry in alone["top_k"]], rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("body, content_type, message", [
    (b"hello, not a picture", "image/png", "not a readable image"),
    (b"", "image/png", "empty"),
    (b"%PDF-1.4 not an image", "image/png", "not a readable image"),
    (b"{not json", "application/json", "not valid JSON"),
    (b'{"pixels": [1, 2, 3]}', "application/json", "expected 784 values"),
    (b'{"pixels": [300]}', "application/json", "expected 784 values"),
    (json.dumps({"pixels": [300] * 784}).encode(), "application/json", "must lie in 0-255"),
    (json.dumps({"pixels": ["a"] * 784}).encode(), "application/json", "expected numbers"),
    (json.dumps({"pixels": [True] * 784}).encode(), "application/json", "expected a list of 784 numbers"),
    (json.dumps({"pixels": [0] * 784, "colour": 1}).encode(), "application/json", "unknown key"),
    (json.dumps({"pixels": [0] * 784, "top_k": 11}).encode(), "application/json", "top_k"),
    (b"[]", "application/json", "expected a JSON object"),
])
def test_a_bad_body_gets_a_400_with_a_message_and_no_traceback(client, body, content_type, message):
    response = client.post("/api/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error and "Traceback" not in error and "File \"" not in error


def test_a_blank_drawing_is_a_400_that_says_so(client):
    blank = digit_png(np.zeros((28, 28), np.uint8))
    response = client.post("/api/predict", content=blank, headers={"Content-Type": "image/png"})
    assert response.status_code == 400 and "blank image" in response.json()["error"]


def test_a_multipart_upload_needs_its_picture_in_the_image_field(client, real_mnist):
    response = client.post("/api/predict", files={"photo": ("a.png", digit_png(real_mnist.test_images[0]), "image/png")})
    assert response.status_code == 400 and '"image"' in response.json()["error"]


def test_bodies_over_the_limit_get_413_whether_declared_or_streamed(own_zoo):
    with TestClient(create_app(own_zoo, max_body_bytes=1000)) as small:
        declared = small.post("/api/predict", content=b"x" * 2000, headers={"Content-Type": "image/png"})
        assert declared.status_code == 413 and "limit of 1,000 bytes" in declared.json()["error"]

        def chunks():  # no Content-Length: the limit is counted as the body arrives
            for _ in range(5):
                yield b"x" * 400

        streamed = small.post("/api/predict", content=chunks(), headers={"Content-Type": "image/png"})
        assert streamed.status_code == 413 and "limit" in streamed.json()["error"]


def test_pictures_with_too_many_pixels_are_refused_before_decoding(client, monkeypatch):
    from PIL import Image

    from mnist_zoo.web import inputs

    monkeypatch.setattr(inputs, "MAX_PICTURE_PIXELS", 10_000)
    buffer = io.BytesIO()
    Image.new("L", (200, 100)).save(buffer, format="PNG")  # 20,000 pixels in a few hundred bytes
    response = client.post("/api/predict", content=buffer.getvalue(), headers={"Content-Type": "image/png"})
    assert response.status_code == 400 and "200x100 pixels is more than the 10,000" in response.json()["error"]


@pytest.mark.parametrize("model_id", ["no-such-run", "../run-cnn/best.keras", str(Path("run-cnn") / "best.keras")])
def test_model_ids_are_looked_up_among_those_served_never_as_paths(client, real_mnist, model_id):
    response = client.post("/api/predict", json={"pixels": real_mnist.test_images[0].ravel().tolist(),
                                                 "model": model_id})
    assert response.status_code == 404 and "no served model has the id" in response.json()["error"]


def test_an_internal_failure_is_a_500_with_a_json_message_not_a_traceback(own_zoo, real_mnist, monkeypatch):
    model = own_zoo.models["run-linear"]

    def broken(images):
        raise RuntimeError("the runtime fell over")

    monkeypatch.setattr(model.classifier, "probabilities", broken)
    with TestClient(create_app(own_zoo), raise_server_exceptions=False) as failing:
        response = failing.post("/api/predict", json={"pixels": real_mnist.test_images[0].ravel().tolist(),
                                                      "model": "run-linear"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError); see the server's terminal"}


def test_a_loopback_server_answers_only_to_its_own_host_names(own_zoo):
    app = create_app(own_zoo, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:  # one lifespan: a closed zoo stays closed
        assert client.get("/api/models").status_code == 200
        assert client.get("/api/models", headers={"Host": "attacker.example"}).status_code == 400


# ----------------------------------------------------------------------------- the page


def test_the_page_and_its_assets_are_served_and_load_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="pad"' in page.text and 'id="seen"' in page.text
    for asset, kind in (("app.js", "javascript"), ("style.css", "css")):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    static = Path(__file__).resolve().parent.parent / "mnist_zoo" / "web" / "static"
    for path in static.iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path.name


# ----------------------------------------------------------------------------- the command


def test_serve_without_any_model_says_how_to_get_one(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--runs-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "no model to serve" in result.output and "mnist-zoo train --model cnn" in result.output


def test_a_taken_port_is_a_one_line_error(runs_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", str(runs_dir / "run-linear"), "--no-runs", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "--port" in result.output


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_the_real_server_prints_its_url_answers_and_stops_cleanly(runs_dir, tmp_path, real_mnist, signal_number):
    import urllib.request

    process, url = start_server("--runs-dir", str(runs_dir), cwd=tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        with urllib.request.urlopen(url + "api/models", timeout=30) as response:
            assert len(json.load(response)["models"]) == len(MODELS)
        request = urllib.request.Request(url + "api/predict", data=digit_png(real_mnist.test_images[0]),
                                         headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert len(json.load(response)["predictions"]) == len(MODELS)
    finally:
        code, stdout, stderr = stop_server(process, signal_number)
    assert code == 0, stderr
    assert "Stopped." in stderr and "Traceback" not in stderr


def get_models_as(url: str, host_header: str) -> tuple[int, bytes]:
    """GET /api/models from the server at `url` with this Host header (what a browser sends for the name it used)."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest("GET", "/api/models", skip_host=True)
        connection.putheader("Host", host_header)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_real_server_answers_only_requests_addressed_to_its_own_host_names(runs_dir, tmp_path):
    # The allowlist the command sets up itself: a page elsewhere that rebinds its DNS name to
    # 127.0.0.1 reaches the port, but its requests carry its own name as Host.
    process, url = start_server(str(runs_dir / "run-linear"), "--no-runs", cwd=tmp_path)
    port = urlsplit(url).port
    try:
        for own in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
            status, body = get_models_as(url, own)
            assert status == 200 and json.loads(body)["models"], (own, status, body)
        for foreign in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}"):
            status, body = get_models_as(url, foreign)
            assert status == 400 and b"run-linear" not in body, (foreign, status, body)
    finally:
        code, _, stderr = stop_server(process)
    assert code == 0, stderr


def read_until(connection: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = connection.recv(4096)
        assert chunk, f"the server closed the connection; it had sent {data!r}"
        data += chunk
    return data


def wait_until_refused(url: str, process) -> None:
    """Blocks until the server no longer accepts connections: its shutdown has begun."""
    address = urlsplit(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            socket.create_connection((address.hostname, address.port), timeout=5).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.02)
    raise AssertionError("the server still accepts connections 30 s after the signal")


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=lambda number: number.name)
def test_a_stop_signal_lets_the_request_under_way_finish_then_exits_0(runs_dir, tmp_path, real_mnist, signal_number):
    process, url = start_server(str(runs_dir / "run-linear"), "--no-runs", cwd=tmp_path)
    address = urlsplit(url)
    picture = digit_png(real_mnist.test_images[0])
    head = (f"POST /api/predict HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(picture)}\r\nExpect: 100-continue\r\n\r\n").encode()
    try:
        with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
            connection.sendall(head + picture[:100])
            # "100 Continue" comes when the endpoint starts reading the body: the request is under way.
            assert read_until(connection, b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
            process.send_signal(signal_number)
            wait_until_refused(url, process)
            # A slow client: the rest of its picture comes a second later. The server, stopping,
            # neither answers nor hangs up meanwhile (one that dropped requests under way would).
            connection.settimeout(1)
            try:
                early = connection.recv(100)
            except TimeoutError:
                early = None
            assert early is None, f"the stopping server cut the request under way short: {early!r}"
            connection.settimeout(30)
            connection.sendall(picture[100:])
            response = read_until(connection, b"\r\n\r\n")
            while chunk := connection.recv(65536):  # the server closes it after the answer: it is stopping
                response += chunk
    except BaseException:
        process.kill()
        process.communicate()
        raise
    _, stderr = process.communicate(timeout=30)  # no second signal: the first one stops it
    code = process.returncode
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), response[:500]
    (prediction,) = json.loads(body)["predictions"]
    assert prediction["model"] == "run-linear" and len(prediction["top_k"]) == 3
    assert code == 0, stderr
    assert "Stopped." in stderr and "Traceback" not in stderr


def test_listening_on_every_interface_warns_that_the_page_is_reachable_from_the_network(runs_dir, tmp_path):
    process, url = start_server(str(runs_dir / "run-linear"), "--no-runs", "--host", "0.0.0.0", cwd=tmp_path)
    try:  # reachable from the network: by whatever name other machines know this one
        status, _ = get_models_as(url, f"mnist-box.lan:{urlsplit(url).port}")
    finally:
        code, _, stderr = stop_server(process)
    assert status == 200
    assert url.startswith("http://127.0.0.1:")
    assert "reachable from the network" in stderr and "--host 127.0.0.1" in stderr
    assert code == 0


def test_the_load_benchmark_is_bounded_and_reports_its_figures(runs_dir, small_mnist_dir):
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_serve.py"
    runs = [str(runs_dir / f"run-{model}") for model in MODELS]
    result = subprocess.run([sys.executable, str(script), "--runs", *runs, "--data-dir", str(small_mnist_dir),
                             "--clients", "2", "--seconds", "1", "--warmup-seconds", "0.5", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["errors"] == 0 and figures["requests"] > 0 and figures["clients"] == 2
    assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"]
    assert figures["server_memory_mb_start"] > 0 and figures["cpu_flags"] is not None


def test_a_stop_signal_landing_in_a_callback_during_start_up_still_stops_the_server():
    # A Ctrl-C that lands while Python runs a callback (an import lock's, in start-up) used to raise
    # KeyboardInterrupt there, where Python prints it as "ignored": the server then served for ever.
    import subprocess
    import sys

    script = """
import os, signal, weakref
from mnist_zoo.web.server import bind, run

async def app(scope, receive, send):
    while scope["type"] == "lifespan":
        kind = (await receive())["type"].removeprefix("lifespan.")
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return

class Thing:
    pass

def ready():
    thing = Thing()
    ready.reference = weakref.ref(thing, lambda _: os.kill(os.getpid(), signal.SIGINT))
    del thing  # the callback sends the signal: its handler runs inside the callback

run(app, bind("127.0.0.1", 0), ready=ready)
print("returned")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "returned", result.stderr[-2000:]


# ----------------------------------------------------------------------------- POST /api/explain


def test_explain_answers_what_the_explain_stage_computes_for_the_same_image(client, runs_dir, real_mnist):
    import keras

    from mnist_zoo.explanations.attribution import grad_cam, integrated_gradients, last_convolution
    from mnist_zoo.explanations.network import explainable_model, model_inputs

    image = real_mnist.test_images[0]
    response = client.post("/api/explain", json={"pixels": image.ravel().tolist(), "model": "run-cnn"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "run-cnn" and answer["baseline"] == "black image"
    assert answer["pixels"] == image.ravel().tolist() and answer["completeness_error"] <= 0.01
    model, _ = explainable_model(keras.saving.load_model(runs_dir / "run-cnn" / "best.keras"))
    inputs = model_inputs(model, image[None])
    expected = integrated_gradients(model, inputs, np.array([answer["class_index"]]))[0].attributions
    np.testing.assert_allclose(answer["integrated_gradients"], expected.ravel(), atol=1e-5)
    cam = grad_cam(model, inputs, np.array([answer["class_index"]]), last_convolution(model))[0]
    np.testing.assert_allclose(answer["grad_cam"], cam.ravel(), atol=1e-5)
    assert answer["feature_maps"] and all(layer["png"].startswith("data:image/png;base64,")
                                          for layer in answer["feature_maps"])
    from PIL import Image

    first = Image.open(io.BytesIO(base64.b64decode(answer["feature_maps"][0]["png"].split(",", 1)[1])))
    assert first.format == "PNG" and first.width < 200


def test_explain_of_a_model_without_convolutions_has_no_maps(client, real_mnist):
    response = client.post("/api/explain?model=run-mlp", content=digit_png(real_mnist.test_images[1]),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["grad_cam"] is None and answer["feature_maps"] == [] and len(answer["integrated_gradients"]) == 784
    listing = client.get("/api/models").json()["models"]
    assert all(model["explainable"] for model in listing)


@pytest.mark.parametrize("query, status, message", [
    ("", 400, "name the model"),
    ("?model=nobody", 404, "no served model"),
])
def test_explain_needs_a_served_model(client, real_mnist, query, status, message):
    response = client.post(f"/api/explain{query}", content=digit_png(real_mnist.test_images[1]),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == status and message in response.json()["error"]


def test_explain_is_bounded_like_predict_and_busy_beyond_its_queue(own_zoo, real_mnist, monkeypatch):
    from mnist_zoo.web import app as web_app

    with TestClient(create_app(own_zoo, max_body_bytes=1000)) as small:
        response = small.post("/api/explain?model=run-cnn", content=digit_png(real_mnist.test_images[1]),
                              headers={"Content-Type": "image/png"})
        assert response.status_code == 413
    monkeypatch.setattr(web_app, "MAX_WAITING_EXPLANATIONS", 0)
    with TestClient(create_app(Zoo(dict(own_zoo.models)))) as busy:
        response = busy.post("/api/explain?model=run-cnn", content=digit_png(real_mnist.test_images[1]),
                             headers={"Content-Type": "image/png"})
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
