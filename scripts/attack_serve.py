"""A hostile client against `mnist-zoo serve`: every attack of the security issue, each refused in time.

Starts `mnist-zoo serve RUN --no-runs --port 0` on 127.0.0.1 (this checkout's code), or attacks a
server already running (--url), and sends it what a hostile web page or client would: pictures in
formats it must not decode (EPS, JPEG 2000, PCX, PPM, ICO), small files declaring huge pictures,
deeply nested JSON, requests from other origins and other host names (DNS rebinding), bodies over
the size limit, declared and streamed, slow clients (slowloris), a flood of large uploads, and
malformed bodies. Each attack is one line: PASS (refused as expected, and quickly) or FAIL, with
the status (or how the connection ended) and the server's message. Between the attacks, during
the floods and at the end a drawn digit must still get its predictions (200). When the script
started the server, its peak resident memory (VmHWM) is checked against --max-rss-mb, its log
against tracebacks, and its exit after Ctrl-C.

Exit status 0 if and only if every attack passed and the server stayed up.

    python scripts/attack_serve.py --run runs/<run>                  # about 40 s
    python scripts/attack_serve.py --run runs/<run> --quick --json   # smaller floods, ~20 s, JSON
    python scripts/attack_serve.py --run runs/<run> --slow           # also a body trickled for 60 s (408)
    python scripts/attack_serve.py --url http://127.0.0.1:8000/      # a server already running

Uses only the standard library, numpy and Pillow: it is a client, and knows the server's limits
only from GET /api/models and the constants below (those of mnist_zoo/web/).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent

# The server's limits (mnist_zoo/web/guards.py and server.py); GET /api/models overrides the sizes.
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_PICTURE_PIXELS = 4096 * 4096
MAX_JSON_BYTES = 256 * 1024
HEADER_SECONDS = 10.0
BODY_SECONDS = 60.0
MAX_CONNECTIONS = 32

FAST = 2.0
"""A refusal must come within this many seconds (on a loaded 2-core machine: it takes milliseconds)."""
GRACE = 3.0
"""Beyond a server deadline (HEADER_SECONDS, BODY_SECONDS), how late the server may act on it."""

MODES = {
    # flood: threads posting a grainy side x side picture (~7 MB, under the body limit) for that many
    # seconds; slowloris: connections held (more than MAX_CONNECTIONS by default), and whether they
    # are held beside the other attacks.
    "default": {"flood_threads": 40, "flood_seconds": 20.0, "flood_side": 3000, "slowloris": 40,
                "slowloris_beside": False},
    "quick": {"flood_threads": 12, "flood_seconds": 3.0, "flood_side": 3000, "slowloris": 3,
              "slowloris_beside": True},
}


# ----------------------------------------------------------------------------- pictures and bodies


def drawn_digit(side: int = 280, mode: str = "RGBA"):
    """A 7 drawn white on black as the page draws it (280x280 RGBA), at any size: a Pillow image."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (side, side), 0)
    scale = side / 280
    ImageDraw.Draw(image).line([(80 * scale, 60 * scale), (200 * scale, 60 * scale), (120 * scale, 230 * scale)],
                               fill=255, width=max(1, round(22 * scale)), joint="curve")
    return image.convert(mode)


def encoded(image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def declared_png(width: int, height: int, rows: int | None = None) -> bytes:
    """An RGBA PNG declaring width x height, with `rows` rows of zeros (all: a real, highly compressible picture)."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    compressor = zlib.compressobj(9)
    row = bytes(1 + 4 * width)
    pixels = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows))
    pixels += compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n%%EndComments\n"
       b"{} loop\n"  # an endless loop, were Ghostscript ever to run it
       b"showpage\n%%EOF\n")
DOS_EPS = (b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIII", 30, len(EPS), 0, 0, 0, 0) + b"\xff\xff" + EPS)


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "attack-boundary") -> tuple[bytes, str]:
    """A multipart/form-data body of (field, filename or None, content) parts, and its Content-Type."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode("utf-8", "surrogateescape")
        if filename is not None:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass
class Payloads:
    digit_png: bytes
    digit_json: bytes
    flood_png: bytes
    big_png: bytes
    bomb_png: bytes
    header_png: bytes
    formats: dict[str, tuple[bytes, str]]


def make_payloads(flood_side: int) -> Payloads:
    digit = drawn_digit()
    small = drawn_digit(28, "L")
    formats = {
        "EPS {} loop as image/png": (EPS, "image/png"),
        "EPS {} loop as application/octet-stream": (EPS, "application/octet-stream"),
        "DOS-binary EPS as image/png": (DOS_EPS, "image/png"),
        "JPEG 2000 upload": (_jpeg2000(digit), "image/png"),
        "PCX upload": (encoded(digit.convert("L"), "PCX"), "image/png"),
        "PPM upload": (encoded(digit.convert("RGB"), "PPM"), "application/octet-stream"),
        "ICO upload": (encoded(digit.convert("RGBA").resize((64, 64)), "ICO"), "image/png"),
    }
    return Payloads(
        digit_png=encoded(digit, "PNG"),
        digit_json=json.dumps({"pixels": [int(value) for value in small.tobytes()]}).encode(),
        flood_png=grainy_png(flood_side),
        big_png=encoded(drawn_digit(4000), "PNG"),
        bomb_png=declared_png(7000, 7000),
        header_png=declared_png(100_000, 100_000, rows=0),
        formats=formats,
    )


def grainy_png(side: int) -> bytes:
    """The drawn digit at side x side pixels, RGB, with a faint grain that defeats compression: a photo-sized
    upload of some 7 MB at 3000x3000, under the 8 MiB body limit (a clean drawing compresses to 50 KB)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(drawn_digit(side, "L")).astype(np.int16)
    pixels += np.random.default_rng(0).integers(0, 8, pixels.shape, dtype=np.int16)
    return encoded(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB"), "PNG", compress_level=1)


def _jpeg2000(image) -> bytes:
    """A real JPEG 2000 file if Pillow can write one, else its signature box followed by junk."""
    try:
        return encoded(image.convert("L"), "JPEG2000")
    except (OSError, KeyError):
        return b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x00\x00\x14ftypjp2 " + bytes(200)


# ----------------------------------------------------------------------------- one exchange


@dataclass
class Answer:
    """What came back: an HTTP answer (status, headers, body) or how the connection ended without one."""

    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    failure: str = ""
    """Without a status: "closed", "reset", "timeout after N s", "refused"."""

    def message(self) -> str:
        try:
            document = json.loads(self.body)
        except ValueError:
            return self.body[:80].decode("utf-8", "replace")
        if isinstance(document, dict) and "error" in document:
            return str(document["error"])
        if isinstance(document, dict) and "predictions" in document:
            predictions = document["predictions"]
            return f"{len(predictions)} prediction(s): " + ", ".join(
                f"{item.get('model')} says {item.get('prediction')}" for item in predictions)
        return self.body[:80].decode("utf-8", "replace")

    def describe(self, width: int = 90) -> str:
        if self.status is None:
            return f"no answer ({self.failure})"
        text = self.message()
        return f"{self.status} {text[:width] + ('...' if len(text) > width else '')!r}"

    def predicted(self) -> bool:
        """A 200 with a non-empty list of predictions, each with its top classes."""
        if self.status != 200:
            return False
        try:
            predictions = json.loads(self.body)["predictions"]
        except (ValueError, KeyError, TypeError):
            return False
        return bool(predictions) and all(item.get("top_k") for item in predictions)

    def leaks(self) -> bool:
        """A traceback or a Python object's address in the answer."""
        return b"Traceback" in self.body or b'File "' in self.body or b" object at 0x" in self.body


class Target:
    """The server: where to connect and the Host header it answers."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise SystemExit(f"--url {url}: expected http://HOST:PORT/")
        self.url = url
        self.address = (parts.hostname, parts.port or 80)
        self.host = parts.netloc
        self.port = parts.port or 80

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(self.address, timeout=timeout)

    def request_head(self, method: str, path: str, headers: list[tuple[str, str]] | dict | None = None,
                     length: int | None = 0, host: str | None = "", keep_alive: bool = False) -> bytes:
        """A request's head. `host` "": the server's own; None: no Host header. `length` None: chunked."""
        headers = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        lines = [f"{method} {path} HTTP/1.1"]
        if host is not None:
            lines.append(f"Host: {host or self.host}")
        names = {name.lower() for name, _ in headers}
        if length is None and "transfer-encoding" not in names:
            lines.append("Transfer-Encoding: chunked")
        elif length is not None and "content-length" not in names and (length or method == "POST"):
            lines.append(f"Content-Length: {length}")
        if not keep_alive:
            lines.append("Connection: close")
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def exchange(self, method: str, path: str, body: bytes = b"", headers=None, *, chunks=None,
                 host: str | None = "", timeout: float = 30.0, head: bytes | None = None) -> Answer:
        """Sends one request on a new connection and reads the answer, stopping to send once the server answers.

        `chunks`: an iterable of byte strings sent with chunked transfer encoding instead of `body`.
        """
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        try:
            sock = self.connect(min(timeout, 10))
        except OSError as error:
            return Answer(failure=f"refused ({error.strerror or error})", seconds=time.perf_counter() - start)
        try:
            if head is None:
                head = self.request_head(method, path, headers, None if chunks is not None else len(body), host)
            if chunks is not None:
                pieces = itertools.chain([head], (b"%x\r\n%s\r\n" % (len(c), c) for c in chunks), [b"0\r\n\r\n"])
            else:
                pieces = itertools.chain([head], (body[i:i + 65536] for i in range(0, len(body), 65536)))
            send_until_answered(sock, pieces, deadline)
            answer = read_answer(sock, deadline)
        finally:
            sock.close()
        answer.seconds = time.perf_counter() - start
        return answer


def send_until_answered(sock: socket.socket, pieces, deadline: float) -> None:
    """Sends `pieces`, stopping early (without an error) once the server answers, closes or stops reading."""
    sock.setblocking(False)
    try:
        for piece in pieces:
            view = memoryview(piece)
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                readable, writable, _ = select.select([sock], [sock], [], remaining)
                if readable:
                    return  # an answer (or the end of the connection) before the whole request
                if writable:
                    try:
                        view = view[sock.send(view):]
                    except BlockingIOError:
                        continue
                    except OSError:  # reset, broken pipe: read what came, if anything
                        return
    finally:
        sock.setblocking(True)


def read_answer(sock: socket.socket, deadline: float) -> Answer:
    """Reads one HTTP answer (its Content-Length, or up to the end of the connection)."""
    received = b""
    ended = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ended = "timeout"
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            ended = "timeout"
            break
        except ConnectionResetError:
            ended = "reset"
            break
        except OSError as error:
            ended = error.strerror or type(error).__name__
            break
        if not data:
            ended = "closed"
            break
        received += data
        answer = parse_answer(received)
        if answer is not None and answer.headers.get("content-length", "").isdigit() \
                and len(answer.body) >= int(answer.headers["content-length"]):
            return answer
    answer = parse_answer(received)
    if answer is None:
        return Answer(failure=ended if ended != "timeout" else "timeout: nothing came")
    return answer


def parse_answer(data: bytes) -> Answer | None:
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunked(body)
    return Answer(status=status, headers=headers, body=body)


def _unchunked(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


# ----------------------------------------------------------------------------- the report


@dataclass
class Result:
    name: str
    group: str
    expected: str
    result: str
    """PASS, FAIL or SKIP."""
    outcome: str
    seconds: float | None = None


class Report:
    def __init__(self, as_json: bool):
        self.results: list[Result] = []
        self.lock = threading.Lock()
        self.stream = sys.stderr if as_json else sys.stdout
        self.group = ""

    def add(self, name: str, expected: str, passed: bool | None, outcome: str, seconds: float | None = None,
            group: str | None = None) -> bool:
        verdict = "SKIP" if passed is None else "PASS" if passed else "FAIL"
        seconds = None if seconds is None else round(seconds, 3)
        result = Result(name, group or self.group, expected, verdict, outcome, seconds)
        with self.lock:
            self.results.append(result)
            line = f"{verdict}  {name:<52} {outcome}"
            if verdict == "FAIL":
                line += f"   [expected: {expected}]"
            print(line, file=self.stream, flush=True)
        return bool(passed)

    def heading(self, group: str) -> None:
        self.group = group
        print(f"-- {group}", file=self.stream, flush=True)

    def check(self, name: str, answer: Answer, statuses, expected: str, contains: str | None = None,
              within: float = FAST, absent: str | None = None) -> bool:
        """PASS when the answer's status is one of `statuses`, its message holds `contains` (and not
        `absent`), it came within `within` seconds, and it shows no traceback."""
        statuses = (statuses,) if isinstance(statuses, int) else tuple(statuses)
        message = answer.message().lower() if answer.status is not None else ""
        problems = []
        if answer.status not in statuses:
            problems.append("wrong status")
        if contains is not None and contains.lower() not in message:
            problems.append(f"message without {contains!r}")
        if absent is not None and absent.lower() in message:
            problems.append(f"message mentions {absent!r}")
        if answer.seconds > within:
            problems.append(f"slower than {within:g} s")
        if answer.leaks():
            problems.append("a traceback in the answer")
        outcome = f"{answer.describe()} in {answer.seconds:.2f} s"
        if problems:
            outcome += f" ({'; '.join(problems)})"
        return self.add(name, expected, not problems, outcome, answer.seconds)


# ----------------------------------------------------------------------------- the server


class Server:
    """A `mnist-zoo serve` process of this checkout, its output drained by threads."""

    def __init__(self, run: Path):
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.command = [sys.executable, "-m", "mnist_zoo", "serve", str(run), "--no-runs", "--host", "127.0.0.1",
                        "--port", "0"]
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        errors="replace", env=env)
        self.pid = self.process.pid
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()

    def _drain_stdout(self) -> None:
        for line in self.process.stdout:
            self.stdout.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_url(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("Serving ") and " at " in line:
                return line.split(" at ", 1)[1].split()[0]
        self.process.kill()
        self.process.wait()
        raise SystemExit("the server did not start: " + " ".join(self.command) + "\n"
                         + "".join(self.stdout) + "".join(self.stderr[-40:]))

    def memory_mb(self) -> tuple[float, float] | None:
        """(VmRSS, VmHWM) in MB, or None once the process is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        values = {}
        for line in status.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))

    def children(self) -> list[str]:
        """The server's child processes (Ghostscript would be one), by command name."""
        names = []
        for task in Path(f"/proc/{self.pid}/task").glob("*"):
            try:
                pids = (task / "children").read_text().split()
            except OSError:
                continue
            for child in pids:
                try:
                    names.append(Path(f"/proc/{child}/comm").read_text().strip())
                except OSError:
                    names.append(child)
        return names

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> int | None:
        """Ctrl-C, as a user stops it; the exit status (None: it had to be killed)."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


# ----------------------------------------------------------------------------- the attacks


class Attack:
    def __init__(self, target: Target, report: Report, payloads: Payloads, server: Server | None, mode: dict):
        self.target = target
        self.report = report
        self.payloads = payloads
        self.server = server
        self.mode = mode
        self.max_body = MAX_BODY_BYTES
        self.max_pixels = MAX_PICTURE_PIXELS

    # -- helpers

    def post(self, body: bytes, content_type: str | None, path: str = "/api/predict", headers=None,
             **options) -> Answer:
        headers = dict(headers or {})
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.target.exchange("POST", path, body, headers, **options)

    def drawing(self, timeout: float = 30) -> Answer:
        return self.post(self.payloads.digit_png, "image/png", timeout=timeout)

    def alive(self, after: str, group: str | None = None) -> bool:
        answer = self.drawing()
        return self.report.add(f"a drawing is still answered after {after}", "200 with predictions",
                               answer.predicted(), f"{answer.describe(60)} in {answer.seconds:.2f} s", answer.seconds,
                               group)

    def hwm(self) -> float | None:
        memory = self.server.memory_mb() if self.server else None
        return memory[1] if memory else None

    # -- 0: the server answers at all

    def baseline(self) -> bool:
        self.report.heading("baseline")
        listing = self.target.exchange("GET", "/api/models")
        try:
            models = json.loads(listing.body)
            self.max_body = int(models.get("max_body_bytes", self.max_body))
            self.max_pixels = int(models.get("max_picture_pixels", self.max_pixels))
            names = ", ".join(model["id"] for model in models["models"])
        except (ValueError, KeyError, TypeError):
            names = "?"
        self.report.add("GET /api/models", "200 with the models", listing.status == 200 and names != "?",
                        f"{listing.status or listing.describe()}: {names}; body limit {self.max_body:,} B, "
                        f"picture limit {self.max_pixels:,} px", listing.seconds)
        first = self.drawing(timeout=60)  # the first may be slower: nothing is warm yet
        return self.report.add("a drawn digit (280x280 PNG) is predicted", "200 with predictions",
                               first.predicted(), f"{first.describe(60)} in {first.seconds:.2f} s", first.seconds)

    # -- 10: security headers

    def security_headers(self) -> None:
        self.report.heading("10. security headers")
        for path, method, body, headers in [
            ("/", "GET", b"", None),
            ("/api/models", "GET", b"", None),
            ("/api/nothing", "GET", b"", None),
            ("/api/predict", "POST", b"x", {"Origin": "http://evil.example", "Content-Type": "image/png"}),
        ]:
            answer = self.target.exchange(method, path, body, headers)
            policy = answer.headers.get("content-security-policy", "")
            missing = []
            if not policy:
                missing.append("no CSP")
            if "unsafe-inline" in policy or "unsafe-eval" in policy:
                missing.append("CSP allows unsafe-inline/eval")
            if "frame-ancestors 'none'" not in policy:
                missing.append("no frame-ancestors 'none'")
            if answer.headers.get("x-content-type-options", "").lower() != "nosniff":
                missing.append("no nosniff")
            if not answer.headers.get("referrer-policy"):
                missing.append("no Referrer-Policy")
            shown = f"{answer.status or answer.describe()}; CSP {'set' if policy else 'missing'}, nosniff, " \
                    f"Referrer-Policy {answer.headers.get('referrer-policy', '-')}"
            self.report.add(f"security headers on {method} {path} ({answer.status})",
                            "CSP without unsafe-inline, frame-ancestors 'none', nosniff, Referrer-Policy",
                            not missing and answer.status is not None,
                            shown if not missing else f"{answer.describe(40)}: {', '.join(missing)}", answer.seconds)

    # -- 5: DNS rebinding

    def host_names(self) -> None:
        self.report.heading("5. DNS rebinding (Host header)")
        port = self.target.port
        for host in ["evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}",
                     f"localhost.evil.example:{port}"]:
            answer = self.target.exchange("GET", "/api/models", host=host)
            self.report.check(f"GET /api/models with Host: {host}", answer, 400, "400 not a name of this server",
                              contains="is not a name of this server")
        answer = self.post(self.payloads.digit_png, "image/png", host=f"evil.example:{port}")
        self.report.check(f"POST a drawing with Host: evil.example:{port}", answer, 400,
                          "400 not a name of this server", contains="is not a name of this server")
        answer = self.target.exchange("GET", "/api/models", host=None, head=b"GET /api/models HTTP/1.0\r\n\r\n")
        self.report.check("GET /api/models without a Host header (HTTP/1.0)", answer, 400, "400",
                          contains="host header")

    # -- 4: other origins

    def other_origins(self) -> None:
        self.report.heading("4. requests from other sites")
        json_body = self.payloads.digit_json
        cases = [
            ("POST JSON with Origin: http://evil.example", json_body,
             {"Content-Type": "application/json", "Origin": "http://evil.example"}, 403),
            ("POST JSON with Origin: null", json_body, {"Content-Type": "application/json", "Origin": "null"}, 403),
            ("POST JSON with Sec-Fetch-Site: cross-site", json_body,
             {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403),
            ("POST a picture with Sec-Fetch-Site: same-site", self.payloads.digit_png,
             {"Content-Type": "image/png", "Sec-Fetch-Site": "same-site"}, 403),
            ("no-cors text/plain POST from evil.example", self.payloads.digit_png,
             {"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site",
              "Sec-Fetch-Mode": "no-cors"}, 403),
            ("form POST (multipart) from evil.example", *self._multipart_digit_with(
                {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}), 403),
            ("text/plain POST (no Origin)", self.payloads.digit_png, {"Content-Type": "text/plain"}, 415),
            ("application/x-www-form-urlencoded POST", b"pixels=0",
             {"Content-Type": "application/x-www-form-urlencoded"}, 415),
            ("POST without a Content-Type", self.payloads.digit_png, {}, 415),
        ]
        for name, body, headers, status in cases:
            answer = self.target.exchange("POST", "/api/predict", body, headers)
            self.report.check(name, answer, status, f"{status} refused",
                              contains="refused" if status == 403 else "is not accepted")

    def _multipart_digit_with(self, headers: dict) -> tuple[bytes, dict]:
        body, content_type = multipart([("image", "digit.png", self.payloads.digit_png)])
        return body, {"Content-Type": content_type, **headers}

    # -- 1: formats it must not decode

    def formats(self) -> None:
        self.report.heading("1. picture formats outside PNG/JPEG/BMP/GIF/WebP/TIFF")
        for name, (body, content_type) in self.payloads.formats.items():
            answer = self.post(body, content_type)
            self.report.check(name, answer, 400, "400 not a readable image, fast, no Ghostscript",
                              contains="not a readable image", absent="ghostscript")
        body, content_type = multipart([("image", "digit.eps", EPS)])
        answer = self.post(body, content_type)
        self.report.check("EPS {} loop as a multipart upload", answer, 400, "400 not a readable image",
                          contains="not a readable image", absent="ghostscript")
        if self.server is not None:
            children = self.server.children()
            self.report.add("no process started by the server (Ghostscript)", "none", not children,
                            ", ".join(children) or "none")

    # -- 2: pictures declaring huge sizes

    def huge_pictures(self) -> None:
        self.report.heading("2. small files declaring huge pictures")
        before = self.hwm()
        for name, body in [(f"7000x7000 RGBA PNG of {len(self.payloads.bomb_png) // 1024} KB", self.payloads.bomb_png),
                           (f"{len(self.payloads.header_png)}-byte PNG declaring 100000x100000",
                            self.payloads.header_png)]:
            answer = self.post(body, "image/png")
            self.report.check(name, answer, 400, "400 more than the ... pixels accepted, fast",
                              contains="pixels accepted")
        body, content_type = multipart([("image", "bomb.png", self.payloads.bomb_png)])
        answer = self.post(body, content_type)
        self.report.check("7000x7000 PNG as a multipart upload", answer, 400, "400 more than the ... pixels accepted",
                          contains="pixels accepted")
        after = self.hwm()
        if before is not None and after is not None:
            self.report.add("server peak memory unchanged by the huge declared pictures", "under +100 MB",
                            after - before < 100, f"peak {before:.0f} -> {after:.0f} MB (+{after - before:.0f} MB)")
        answer = self.post(self.payloads.big_png, "image/png", timeout=60)
        peak = self.hwm()
        grown = f"; server peak {after:.0f} -> {peak:.0f} MB" if after is not None and peak is not None else ""
        self.report.add(f"4000x4000 PNG (16 MP, under the cap; {len(self.payloads.big_png) // 1024} KB)",
                        "200 within 15 s, peak memory +under 400 MB",
                        answer.predicted() and answer.seconds < 15 and (peak is None or peak - after < 400),
                        f"{answer.describe(60)} in {answer.seconds:.2f} s{grown}", answer.seconds)

    # -- 3: JSON built to hurt a parser

    def json_bodies(self) -> None:
        self.report.heading("3. nested and oversized JSON")
        for depth in (1000, 100_000):
            body = b'{"pixels": ' + b"[" * depth + b"]" * depth + b"}"
            answer = self.post(body, "application/json")
            self.report.check(f"JSON nested {depth:,} deep ({len(body) // 1024} KB)", answer, 400,
                              "400 nested ... levels deep, fast", contains=f"nested {depth + 1} levels deep")
        body = b'{"pixels": ' + b"[" * 100_000
        answer = self.post(body, "application/json")
        self.report.check("JSON of 100,000 unclosed brackets", answer, 400, "400 nested, fast", contains="nested")
        body = b'{"model": "' + b"]" * 2000 + b'", "pixels": ' + b"[" * 2000 + b"]" * 2000 + b"}"
        answer = self.post(body, "application/json")
        self.report.check("closing brackets hidden in a string", answer, 400, "400 nested 2001 levels deep",
                          contains="nested 2001 levels deep")
        pixels = json.loads(self.payloads.digit_json)["pixels"]
        body = json.dumps({"model": "[[[[[[[[[[", "pixels": pixels}).encode()
        answer = self.post(body, "application/json")
        self.report.check("opening brackets in a string are not nesting", answer, 404,
                          "404 unknown model (not a nesting refusal)", contains="no served model")
        body = b'{"model": "' + b'\\"' * 100_000
        answer = self.post(body, "application/json")
        self.report.check("an unterminated string of 100,000 escapes", answer, 400, "400 not valid JSON, fast",
                          contains="not valid json")
        body = b'{"pixels": [' + b"0," * 150_000 + b"0]}"
        answer = self.post(body, "application/json")
        self.report.check(f"JSON of {len(body) // 1024} KB (over 256 KiB)", answer, 400, "400 more than the accepted",
                          contains=f"more than the {MAX_JSON_BYTES:,} accepted")

    # -- 8: malformed bodies

    def malformed(self) -> None:
        self.report.heading("8. malformed bodies (4xx, never 500)")
        png = self.payloads.digit_png
        good, ours = multipart([("image", "digit.png", png)])
        two, two_type = multipart([("image", "a.png", png), ("other", "b.png", png)])
        many, many_type = multipart([(f"field{i}", None, b"x") for i in range(50)] + [("image", "a.png", png)])
        text_field, text_type = multipart([("image", None, b"not a file")])
        bad_name, bad_name_type = multipart([("image", "\udcff\udcfe.png", b"not a picture")])
        pixels = [0] * 784
        cases = [
            ("multipart with a boundary the body does not use", good, "multipart/form-data; boundary=other"),
            ("multipart without a boundary", good, "multipart/form-data"),
            ("multipart truncated in the picture", good[: len(good) // 2], ours),
            ("multipart truncated in a part's headers",
             b'--attack-boundary\r\nContent-Disposition: form-data; name="ima', ours),
            ("multipart with two files", two, two_type),
            ("multipart with 51 fields", many, many_type),
            ("multipart whose image is a text field", text_field, text_type),
            ("multipart file name in invalid UTF-8", bad_name, bad_name_type),
            ("not multipart at all", b"not multipart at all", "multipart/form-data; boundary=x"),
            ("JSON in invalid UTF-8 (bytes ff fe)", b"\xff\xfe{\x00", "application/json"),
            ("JSON with an invalid UTF-8 string", b'{"model": "\xc3\x28", "pixels": [0]}', "application/json"),
            ("JSON in truncated UTF-16", '{"pixels": [0]}'.encode("utf-16")[:-1], "application/json"),
            ("JSON with a lone surrogate as the model",
             json.dumps({"model": "\ud800", "pixels": pixels}).encode(), "application/json"),
            ("a 5000-digit integer pixel", b'{"pixels": [' + b"9" * 5000 + b"]}", "application/json"),
            ("40 integers of 5000 digits", b'{"pixels": [' + b",".join([b"9" * 5000] * 40) + b"]}",
             "application/json"),
            ("a 1e999 pixel", b'{"pixels": [1e999]}', "application/json"),
            ("784 pixels of 1e999", json.dumps({"pixels": [1e999] * 784}).replace("Infinity", "1e999").encode(),
             "application/json"),
            ("784 pixels of NaN", b'{"pixels": [' + b",".join([b"NaN"] * 784) + b"]}", "application/json"),
            ("784 pixels of 2**70", json.dumps({"pixels": [2 ** 70] * 784}).encode(), "application/json"),
            ("784 negative pixels", json.dumps({"pixels": [-5] * 784}).encode(), "application/json"),
            ("784 string pixels", json.dumps({"pixels": ["1"] * 784}).encode(), "application/json"),
            ("784 boolean pixels", json.dumps({"pixels": [True] * 784}).encode(), "application/json"),
            ("ragged rows", json.dumps({"pixels": [[0] * 28] * 27 + [[0] * 27]}).encode(), "application/json"),
            ("pixels as an object", b'{"pixels": {"0": 1}}', "application/json"),
            ("JSON that is a list", b"[0, 0, 0]", "application/json"),
            ("JSON null", b"null", "application/json"),
            ("unknown JSON keys", json.dumps({"pixels": pixels, "__proto__": {}}).encode(), "application/json"),
            ("model as an object", json.dumps({"pixels": pixels, "model": {"$ne": ""}}).encode(), "application/json"),
            ("top_k 1e999", b'{"pixels": [' + b",".join([b"0"] * 784) + b'], "top_k": 1e999}', "application/json"),
            ("an empty picture body", b"", "image/png"),
            ("a PNG signature and nothing else", b"\x89PNG\r\n\x1a\n", "image/png"),
            ("a truncated PNG", png[: len(png) // 2], "image/png"),
            ("a blank picture", encoded(drawn_digit(28).point(lambda value: 0), "PNG"), "image/png"),
        ]
        for name, body, content_type in cases:
            answer = self.post(body, content_type)
            self.report.check(name, answer, range(400, 500), "4xx with a message, never 500")

    # -- 9: model ids and top_k

    def models_and_top_k(self) -> None:
        self.report.heading("9. model ids and top_k")
        png = self.payloads.digit_png
        pixels = json.loads(self.payloads.digit_json)["pixels"]
        for name, path, body, content_type, status, contains in [
            ("model=../x/best.keras in the query", "/api/predict?model=../x/best.keras", png, "image/png", 404,
             "no served model"),
            ("model=%2e%2e%2fx%2fbest.keras (encoded)", "/api/predict?model=%2e%2e%2fx%2fbest.keras", png,
             "image/png", 404, "no served model"),
            ("model /etc/passwd in JSON", "/api/predict",
             json.dumps({"pixels": pixels, "model": "/etc/passwd"}).encode(), "application/json", 404,
             "no served model"),
            ("top_k=99 in the query", "/api/predict?top_k=99", png, "image/png", 400, "top_k"),
            ("top_k=0 in the query", "/api/predict?top_k=0", png, "image/png", 400, "top_k"),
            ("top_k=abc in the query", "/api/predict?top_k=abc", png, "image/png", 400, "top_k"),
            ("top_k 99 in JSON", "/api/predict", json.dumps({"pixels": pixels, "top_k": 99}).encode(),
             "application/json", 400, "top_k"),
        ]:
            answer = self.post(body, content_type, path=path)
            self.report.check(name, answer, status, f"{status}", contains=contains)

    # -- 6: body size

    def body_limits(self) -> None:
        self.report.heading("6. bodies over the limit")
        over = self.max_body + 1024 * 1024
        for content_type in ("image/png", "application/json", "multipart/form-data; boundary=x"):
            head = self.target.request_head("POST", "/api/predict", {"Content-Type": content_type}, length=over)
            answer = self.target.exchange("POST", "/api/predict", head=head)  # the head alone: it must not wait
            self.report.check(f"Content-Length {over:,} declared ({content_type.split(';')[0]}), no body sent",
                              answer, 413, "413 at once", contains="over the limit")
        head = self.target.request_head("POST", "/api/predict", {"Content-Type": "image/png",
                                                                 "Content-Length": "9" * 30})
        answer = self.target.exchange("POST", "/api/predict", head=head)
        self.report.check("Content-Length of 30 digits", answer, range(400, 500), "4xx at once")
        chunk = bytes(64 * 1024)
        count = over // len(chunk)
        part = b'--x\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'
        for content_type, first in (("image/png", b"\x89PNG\r\n\x1a\n"), ("multipart/form-data; boundary=x", part)):
            answer = self.target.exchange("POST", "/api/predict", headers={"Content-Type": content_type},
                                          chunks=itertools.chain([first], (chunk for _ in range(count))), timeout=60)
            self.report.check(f"{over // (1024 * 1024)} MiB streamed chunked ({content_type.split(';')[0]})", answer,
                              413, "413", contains="over the limit", within=20)
        answer = self.post(bytes(over), "image/png", timeout=60)
        self.report.check(f"{over // (1024 * 1024)} MiB sent with its Content-Length", answer, 413,
                          "413 before the body is read", contains="over the limit", within=20)

    def body_trickle(self, results: list) -> None:
        """Headers declaring 100,000 bytes, then 4 bytes a second: the body deadline must answer 408."""
        start = time.perf_counter()
        sock = self.target.connect()
        try:
            sock.sendall(self.target.request_head("POST", "/api/predict", {"Content-Type": "image/png"}, 100_000))
            deadline = time.monotonic() + BODY_SECONDS + 10
            received = b""
            ended = "timeout"
            while time.monotonic() < deadline:
                readable, _, _ = select.select([sock], [], [], 1.0)
                if readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        ended = "reset"
                        break
                    if not data:
                        ended = "closed"
                        break
                    received += data
                    answer = parse_answer(received)
                    if answer is not None and len(answer.body) >= int(answer.headers.get("content-length", 0) or 0):
                        break
                    continue
                try:
                    sock.send(b"\x89PNG")
                except OSError:
                    ended = "reset"
                    break
        finally:
            sock.close()
        answer = parse_answer(received) or Answer(failure=ended)
        answer.seconds = time.perf_counter() - start
        results.append(answer)

    # -- 6: slow clients holding connections

    def slowloris(self, count: int, check_during: bool) -> None:
        """`count` connections that never finish their headers (trickling, silent, or cut mid-line) and one
        idle after an answer: each must be closed by the server HEADER_SECONDS after it opened (or answered)."""
        group = "6. slowloris"  # its lines may come among another group's, when it runs beside them
        kinds = itertools.cycle(["trickling headers", "silent", "cut mid-line"])
        host = self.target.host.encode()
        start = time.monotonic()
        # The idle one first: past MAX_CONNECTIONS its request would be refused (and its connection closed).
        idle = self.target.connect(5)
        idle.sendall(self.target.request_head("GET", "/api/models", keep_alive=True))
        first = read_answer(idle, time.monotonic() + 10)
        connections = [[idle, f"idle after a {first.status or first.failure} answer", time.monotonic(), None, b""]]
        # [socket, kind, opened (or answered), closed at, bytes received]
        for _ in range(count):
            kind = next(kinds)
            try:
                sock = self.target.connect(5)
            except OSError as error:
                self.report.add(f"slowloris: {count} connections", "all opened", False, f"connect failed: {error}",
                                group=group)
                break
            if kind == "trickling headers":
                sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: image/png\r\n")
            elif kind == "cut mid-line":
                sock.sendall(b"GET /api/mod")
            connections.append([sock, kind, time.monotonic(), None, b""])
        during: list[Answer] = []
        if check_during:
            def probe():
                time.sleep(2)
                during.append(self.drawing(timeout=20))
            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
        deadline = time.monotonic() + HEADER_SECONDS + 2 * GRACE
        next_trickle = time.monotonic() + 1
        line = 0
        while time.monotonic() < deadline:
            open_ = [entry for entry in connections if entry[3] is None]
            if not open_:
                break
            readable, _, _ = select.select([entry[0] for entry in open_], [], [], 0.1)
            now = time.monotonic()
            for entry in open_:
                if entry[0] in readable:
                    try:
                        data = entry[0].recv(4096)
                    except OSError:
                        data = b""
                    if data:
                        entry[4] += data
                    else:
                        entry[3] = now
            if now >= next_trickle:
                line += 1
                for entry in open_:
                    if entry[1] == "trickling headers" and entry[3] is None:
                        try:
                            entry[0].send(b"X-Slow-%d: %d\r\n" % (line, line))
                        except OSError:
                            entry[3] = now
                next_trickle = now + 1
        for entry in connections:
            entry[0].close()
        late = HEADER_SECONDS + GRACE
        by_kind: dict[str, list[float | None]] = {}
        for sock, kind, opened, closed, received in connections:
            by_kind.setdefault(kind, []).append(None if closed is None else closed - opened)
        closed = [entry for entry in connections if entry[3] is not None]
        slowest = max((entry[3] - entry[2] for entry in closed), default=0.0)
        spoke = [entry[1] for entry in connections if entry[4]]
        parts = []
        for kind, times in by_kind.items():
            shut = [value for value in times if value is not None]
            parts.append(f"{kind} {len(shut)}/{len(times)}" + (f" after {max(shut):.1f} s" if shut else ""))
        outcome = f"{len(closed)}/{len(connections)} closed by the server ({'; '.join(parts)})"
        if spoke:
            outcome += f"; answered before closing: {', '.join(sorted(set(spoke)))}"
        if during:
            outcome += f"; a drawing meanwhile: {during[0].describe(30)}"
        self.report.add(f"slowloris: {count} connections without headers + 1 idle",
                        f"each closed within {late:g} s of opening, silently",
                        len(closed) == len(connections) and slowest <= late, outcome, time.monotonic() - start, group)
        if check_during:
            prober.join(30)
            ok = bool(during) and (during[0].predicted() or during[0].status == 503)
            if during:
                self.report.add("slowloris: a drawing while the connections are held", "200, or a 503 refusal",
                                ok, f"{during[0].describe(60)} in {during[0].seconds:.2f} s", during[0].seconds, group)
        self.alive("the slowloris connections were closed", group)

    # -- 7: a flood of large valid uploads

    def flood(self, threads: int, seconds: float, side: int) -> None:
        self.report.heading("7. flood of large uploads")
        body = self.payloads.flood_png
        done = threading.Event()
        meanwhile: list[Answer] = []
        peak_rss = [0.0]

        def monitor():
            while not done.is_set():
                meanwhile.append(self.drawing(timeout=60))
                memory = self.server.memory_mb() if self.server else None
                if memory:
                    peak_rss[0] = max(peak_rss[0], memory[0])
                done.wait(0.25)

        watcher = threading.Thread(target=monitor, daemon=True)
        start = time.perf_counter()
        watcher.start()
        until = time.monotonic() + seconds

        def client(_):
            answers = []
            while time.monotonic() < until:
                answers.append(self.post(body, "image/png", timeout=120))
            return answers

        with ThreadPoolExecutor(threads) as pool:
            answers = [answer for answers in pool.map(client, range(threads)) for answer in answers]
        done.set()
        watcher.join(60)
        took = time.perf_counter() - start
        kinds = Counter(self._kind(answer) for answer in answers)
        bad = [answer for answer in answers if not (answer.predicted() or answer.status == 503)]
        bare = sum(1 for answer in answers if answer.status == 503 and "retry-after" not in answer.headers)
        summary = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        peak = f"; server RSS up to {peak_rss[0]:.0f} MB" if peak_rss[0] else ""
        note = f" ({bare} of the 503s without Retry-After: uvicorn's own answer past {MAX_CONNECTIONS} connections)" \
            if bare else ""
        self.report.add(f"{threads} threads posting a {side}x{side} PNG of {len(body) / 1e6:.1f} MB for {seconds:g} s",
                        "200 or 503 busy, none 500 or dropped, some answered",
                        not bad and kinds.get("200", 0) > 0, f"{summary} in {took:.1f} s{peak}{note}", took)
        kinds = Counter(self._kind(answer) for answer in meanwhile)
        bad = [answer for answer in meanwhile if not (answer.predicted() or answer.status == 503)]
        slowest = max((answer.seconds for answer in meanwhile), default=0.0)
        summary = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        self.report.add("a drawing during the flood", "200 (or 503 busy), never 500 or dropped",
                        bool(meanwhile) and not bad, f"{len(meanwhile)} sent: {summary}; slowest {slowest:.2f} s")
        self.alive("the flood")

    @staticmethod
    def _kind(answer: Answer) -> str:
        if answer.status is None:
            return f"no answer ({answer.failure})"
        if answer.status == 503:
            return "503 busy" if "retry-after" in answer.headers else "503 (no Retry-After)"
        return str(answer.status)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="A run directory or model file to serve (required unless --url).")
    parser.add_argument("--url", help="Attack a server already running at this URL instead of starting one.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON on stdout (lines go to stderr).")
    parser.add_argument("--quick", action="store_true",
                        help="Smaller floods, slow clients beside the other attacks (~20 s).")
    parser.add_argument("--slow", action="store_true",
                        help=f"Also trickle a body for the server's {BODY_SECONDS:g} s body deadline (408).")
    parser.add_argument("--max-rss-mb", type=float, default=1500.0,
                        help="Bound on the server's peak resident memory (VmHWM) when the script started it.")
    args = parser.parse_args(argv)
    if (args.run is None) == (args.url is None):
        parser.error("give --run RUN_DIR_OR_MODEL (to start a server) or --url (to attack one running)")
    mode = MODES["quick" if args.quick else "default"]
    started = time.perf_counter()
    report = Report(args.json)

    server = None
    if args.run is not None:
        if not args.run.exists():
            parser.error(f"--run {args.run}: no such file or directory")
        server = Server(args.run.resolve())
    try:
        payloads = make_payloads(mode["flood_side"])  # while the server starts
        url = server.wait_for_url() if server else args.url
        target = Target(url)
        print(f"attacking {url}" + (f" (pid {server.pid}, {' '.join(server.command[2:])})" if server else ""),
              file=report.stream, flush=True)
        attack = Attack(target, report, payloads, server, mode)
        if not attack.baseline():
            raise SystemExit("the server does not answer a drawing: nothing to attack")
        memory = server.memory_mb() if server else None
        baseline_rss = memory[0] if memory else None

        background: list[threading.Thread] = []
        trickled: list[Answer] = []
        if args.slow:
            thread = threading.Thread(target=attack.body_trickle, args=(trickled,), daemon=True)
            thread.start()
            background.append(thread)
        beside = None
        if mode["slowloris_beside"]:
            report.heading("6. slowloris, beside the other attacks")
            beside = threading.Thread(target=attack.slowloris, args=(mode["slowloris"], False), daemon=True)
            beside.start()

        attack.security_headers()
        attack.host_names()
        attack.other_origins()
        attack.formats()
        attack.huge_pictures()
        attack.json_bodies()
        attack.malformed()
        attack.models_and_top_k()
        attack.alive("the refused requests")
        attack.body_limits()
        if beside is None:
            report.heading(f"6. slowloris: more connections than the {MAX_CONNECTIONS} served")
            attack.slowloris(mode["slowloris"], True)
        attack.flood(mode["flood_threads"], mode["flood_seconds"], mode["flood_side"])
        if beside is not None:
            beside.join(HEADER_SECONDS + 4 * GRACE)
        report.heading("6. a body trickled for longer than the body deadline")
        if args.slow:
            for thread in background:
                thread.join(BODY_SECONDS + 20)
            answer = trickled[0] if trickled else Answer(failure="no result")
            report.check("100,000 bytes declared, 4 bytes a second", answer, 408,
                         f"408 within {BODY_SECONDS + GRACE:g} s", contains="did not arrive",
                         within=BODY_SECONDS + GRACE)
        else:
            report.add("100,000 bytes declared, 4 bytes a second", "408", None,
                       f"skipped: takes {BODY_SECONDS:g} s (--slow)")

        report.heading("after every attack")
        up = attack.alive("every attack")
        peak = None
        if server is not None:
            memory = server.memory_mb()
            peak = memory[1] if memory else None
            report.add("server peak memory (VmHWM)", f"at most {args.max_rss_mb:g} MB",
                       peak is not None and peak <= args.max_rss_mb,
                       f"{peak:.0f} MB (after start-up {baseline_rss:.0f} MB; bound {args.max_rss_mb:g} MB)"
                       if peak is not None else "the process is gone")
            up = up and server.alive()
            tracebacks = sum(line.startswith("Traceback") for line in server.stderr)
            report.add("server log without tracebacks", "none", tracebacks == 0,
                       f"{tracebacks} traceback(s)" + (": " + "".join(server.stderr[-12:]).strip()[-600:]
                                                      if tracebacks else ""))
            code = server.stop()
            report.add("server stops on Ctrl-C with exit 0", "0", code == 0, f"exit status {code}")
    finally:
        if server is not None and server.alive():
            server.process.kill()
            server.process.wait()

    seconds = time.perf_counter() - started
    counts = Counter(result.result for result in report.results)
    passed = counts["FAIL"] == 0 and up
    summary = (f"{'PASSED' if passed else 'FAILED'}: {len(report.results)} checks, {counts['PASS']} passed, "
               f"{counts['FAIL']} failed, {counts['SKIP']} skipped; server {'up' if up else 'DOWN'}"
               + (f"; peak RSS {peak:.0f} MB (bound {args.max_rss_mb:g} MB)" if peak is not None
                  else "; peak RSS not measured (--url)" if server is None else "")
               + f"; {seconds:.1f} s")
    print(summary, file=report.stream, flush=True)
    if args.json:
        print(json.dumps({"url": url, "mode": "quick" if args.quick else "default", "slow": args.slow,
                          "passed": passed, "server_up": up, "peak_rss_mb": None if peak is None else round(peak, 1),
                          "max_rss_mb": args.max_rss_mb, "seconds": round(seconds, 1),
                          "attacks": [asdict(result) for result in report.results]}, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
