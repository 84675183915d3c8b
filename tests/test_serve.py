"""zoo serve (zoo/inference/serve.py): a real `zoo serve` process on a free port, asked over HTTP with urllib as a
client would: its answers equal zoo.load(...).predict's, concurrent requests are batched and all answered, bad
uploads get one 4xx JSON line and the service keeps answering, SIGTERM drains and exits 0; the page in headless
Chromium, with a picture's heat map; ONNX, int8, multi-label and autoencoder sources (uvicorn in a thread of this
process); 500 concurrent clients (slow); the one line without the serve extra."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import queue
import re
import shutil
import signal
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, digit_sets, free_port, run_zoo
from PIL import Image

import zoo

PICTURES = 12  # held out of nothing in particular: the last digits of scikit-learn's set
UPLOAD_MB = 1  # the server's --max-upload-mb here, so an oversized upload stays cheap


def _digits(folder: Path) -> list[Path]:
    """The last PICTURES of scikit-learn's digits as 64 x 64 RGB PNGs, light on dark (as the run trained on)."""
    from sklearn.datasets import load_digits

    folder.mkdir(exist_ok=True)
    paths = []
    for number, image in enumerate(load_digits().images[-PICTURES:]):
        path = folder / f"digit{number}.png"
        Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((64, 64)).convert("RGB").save(path)
        paths.append(path)
    return paths


def _multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "zoo-test-boundary-7d1f"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _ask(url: str, body: bytes | None = None, content_type: str = "application/octet-stream") -> tuple[int, dict]:
    """(status, JSON answer) of a GET (body None) or a POST."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _raw(url: str, body: bytes) -> tuple[int, str, bytes]:
    """(status, content type, body) of a POST of raw image bytes."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def _post_files(url: str, files: list[tuple[str, bytes]], query: str = "") -> tuple[int, dict]:
    return _ask(f"{url}/predict{query}", *_multipart(files))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> list[Path]:
    return _digits(tmp_path_factory.mktemp("serve_digits"))


@pytest.fixture(scope="module")
def served(digits_run, tmp_path_factory):
    """(url, process, log) of `zoo serve` on the digits run, started once for the module."""
    pytest.importorskip("fastapi")
    log = tmp_path_factory.mktemp("serve_log") / "stderr.txt"
    port = free_port()
    with open(log, "w") as stderr:
        process = run_zoo("serve", digits_run.run_dir, "--port", port, "--max-upload-mb", UPLOAD_MB, "--max-batch", 16,
                          popen=True, stderr=stderr, env={"OMP_NUM_THREADS": "1"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=120)
    except queue.Empty:
        line = ""
    found = re.fullmatch(r"serving (.+) on (http://127\.0\.0\.1:(\d+)) \(page /, API /docs\)\n", line)
    assert found, f"no address printed: {line!r}; stderr: {log.read_text()}"
    assert int(found[3]) == port
    yield found[2], process, log
    if process.poll() is None:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def expected(digits_run, pictures):
    """zoo.load(run).predict of the same files: what every answer must equal."""
    return [prediction.to_dict() for prediction in zoo.load(digits_run.run_dir).predict(pictures, top_k=3)]


def _same(answer: dict, expected: dict) -> None:
    assert answer["labels"] == expected["labels"] and answer.get("unfamiliar") == expected.get("unfamiliar")
    assert [(row["class"], row["index"]) for row in answer["top_k"]] == \
        [(row["class"], row["index"]) for row in expected["top_k"]]
    assert [row["probability"] for row in answer["top_k"]] == \
        pytest.approx([row["probability"] for row in expected["top_k"]], abs=1e-6)
    assert answer["unfamiliar_score"] == pytest.approx(expected["unfamiliar_score"], abs=1e-6)


def test_multipart_answers_equal_zoo_load_predict(served, pictures, expected):
    url = served[0]
    status, answer = _post_files(url, [(path.name, path.read_bytes()) for path in pictures], "?top_k=3")
    assert status == 200
    assert [item["name"] for item in answer["predictions"]] == [path.name for path in pictures]
    assert set(answer["predictions"][0]) == {"name", *expected[0]}  # zoo predict --format json's keys, and the name
    for item, reference in zip(answer["predictions"], expected):
        _same(item, reference)


def test_raw_body_and_coverage(served, pictures, expected, digits_run):
    url = served[0]
    status, answer = _ask(f"{url}/predict?top_k=3", pictures[0].read_bytes(), "image/png")
    assert status == 200 and answer["predictions"][0]["name"] == "the request body"
    _same(answer["predictions"][0], expected[0])
    status, answer = _ask(f"{url}/predict?coverage=0.9", pictures[0].read_bytes(), "image/png")
    reference = zoo.load(digits_run.run_dir).predict(pictures[:1], coverage=0.9)[0]
    assert status == 200 and answer["predictions"][0]["set"] == list(reference.set)


def test_64_concurrent_requests_are_all_answered(served, pictures, expected):
    url = served[0]

    def one(number: int) -> tuple[int, str]:
        path = pictures[number % PICTURES]
        status, answer = _post_files(url, [(path.name, path.read_bytes())])
        return status, answer["predictions"][0]["top_k"][0]["class"] if status == 200 else answer

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(one, range(64)))
    assert answers == [(200, expected[number % PICTURES]["top_k"][0]["class"]) for number in range(64)]


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 1-bit pixels, with one tiny IDAT: decoding it would need them all."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def _over_pillows_limit(folder: Path) -> bytes:
    """A real 1-bit PNG of 10,000 x 10,000 pixels (between Pillow's limit and twice it, where Pillow only warns)."""
    side = 10_000
    assert Image.MAX_IMAGE_PIXELS < side * side < 2 * Image.MAX_IMAGE_PIXELS
    Image.new("1", (side, side)).save(folder / "big.png")
    return (folder / "big.png").read_bytes()


def test_bad_uploads_get_one_4xx_line_and_the_service_goes_on(served, pictures, expected, tmp_path):
    url = served[0]
    good = (pictures[0].name, pictures[0].read_bytes())
    cases = {  # what is sent: (its files, the status, a fragment of the error)
        "a text file": ([("notes.txt", b"not a picture\n")], 415, "notes.txt is not a picture"),
        "an oversized upload": ([("huge.png", b"\0" * (UPLOAD_MB * 2**20 + 1))], 413, "--max-upload-mb"),
        "a decompression bomb": ([("bomb.png", _png_claiming(100_000, 100_000))], 413, "bomb.png has more pixels"),
        "over Pillow's limit": ([("big.png", _over_pillows_limit(tmp_path))], 413, "big.png has more pixels"),
        "a damaged PNG": ([("cut.png", pictures[1].read_bytes()[:120])], 422, "cut.png cannot be decoded"),
        "65 pictures": ([good] * 65, 413, "more than 64 pictures"),
        "a good one and a text file": ([good, ("notes.txt", b"text")], 415, "notes.txt"),
    }
    for case, (files, status, fragment) in cases.items():
        answer = _post_files(url, files)
        assert answer[0] == status and fragment in answer[1]["error"], case
        assert "\n" not in answer[1]["error"] and list(answer[1]) == ["error"], case
        assert _ask(f"{url}/health") == (200, {"status": "ok"}), case
    assert _ask(f"{url}/predict", b"", "image/png")[0] == 400
    assert _ask(f"{url}/predict", *_multipart([]))[0] == 400
    for query in ("?coverage=1.5", "?coverage=x", "?top_k=0"):
        status, answer = _post_files(url, [good], query)
        assert status == 422 and list(answer) == ["error"], query
    status, answer = _post_files(url, [good], "?top_k=3")
    assert status == 200
    _same(answer["predictions"][0], expected[0])


def test_model_and_openapi(served, digits_run):
    url = served[0]
    status, facts = _ask(f"{url}/model")
    assert status == 200
    assert facts["classes"] == [str(digit) for digit in range(10)] and facts["task"] == "classification"
    assert (facts["input_size"], facts["in_channels"], facts["calibration"]) == (32, 1, True)
    assert facts["zoo_version"] == zoo.__version__ and facts["torch_version"]
    assert facts["test"]["accuracy"] == pytest.approx(digits_run.metrics["test"]["accuracy"])
    status, schema = _ask(f"{url}/openapi.json")
    assert status == 200 and {"/predict", "/health", "/model"} <= set(schema["paths"])
    assert _ask(f"{url}/nowhere") == (404, {"error": "Not Found"})


def test_the_page_shows_a_chosen_pictures_top_class(served, pictures, expected):
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium here (Debian: apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, problems = served[0], []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        view = browser.new_page()
        view.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        view.on("pageerror", lambda error: problems.append(str(error)))
        view.on("request", lambda request: None if request.url.startswith((url, "blob:", "data:"))
                else problems.append(request.url))
        view.goto(f"{url}/", wait_until="load")
        view.set_input_files("#files", [str(pictures[3])])
        label = view.wait_for_selector(".card .label", timeout=30_000).text_content()
        shown = view.text_content("#results")
        heat = view.wait_for_selector(".card img.heat", timeout=60_000)
        view.wait_for_function("document.querySelector('.card img.heat').complete", timeout=30_000)
        drawn = heat.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        browser.close()
    assert problems == []
    assert label == expected[3]["top_k"][0]["class"] and pictures[3].name in shown and "%" in shown
    assert drawn[0] > 300 and drawn[1] > 200  # the two panels, the colour bar and the caption, as zoo explain draws


def test_explain_draws_the_picture_zoo_explain_draws(served, pictures, digits_run):
    from zoo.inference.explain import explain_picture

    url = served[0]
    request = urllib.request.Request(f"{url}/explain", data=pictures[5].read_bytes(),
                                     headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        assert answer.status == 200 and answer.headers["Content-Type"] == "image/png"
        drawn = np.asarray(Image.open(io.BytesIO(answer.read())).convert("RGB"), dtype=np.int16)
    predictor = zoo.load(digits_run.run_dir)
    local, _ = explain_picture(predictor, predictor.prepare(pictures[5]), "the request body")
    local = np.asarray(local.convert("RGB"), dtype=np.int16)
    assert drawn.shape == local.shape and np.abs(drawn - local).mean() < 1.0  # threads may round a colour apart
    two = [(path.name, path.read_bytes()) for path in pictures[:2]]
    assert _ask(f"{url}/explain", *_multipart(two)) == (400, {"error": "2 pictures: /explain draws one at a time"})


@contextlib.contextmanager
def _in_process(source: Path) -> Iterator[str]:
    """zoo serve's app over zoo.load(source) in real uvicorn, in a thread of this process, on a free port: its URL.
    (The command's own process is tested above; a thread saves a second torch import per source.)"""
    uvicorn = pytest.importorskip("uvicorn")
    from zoo.inference.serve import build_app

    server = uvicorn.Server(uvicorn.Config(build_app(zoo.load(source)), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _served_equal_loaded(source: Path, pictures: list[Path]) -> dict:
    """POST `pictures` to `source` served; assert the answers equal zoo.load(source).predict's; /model's facts."""
    loaded = zoo.load(source)
    ranked = loaded.task.has_classes  # an autoencoder's answers have no top-k
    expected = [record.to_dict() for record in loaded.predict(pictures, **({"top_k": 3} if ranked else {}))]
    with _in_process(source) as url:
        status, answer = _post_files(url, [(path.name, path.read_bytes()) for path in pictures],
                                     "?top_k=3" if ranked else "")
        facts = _ask(f"{url}/model")[1]
        explained = _raw(f"{url}/explain", pictures[0].read_bytes())
    assert status == 200 and len(answer["predictions"]) == len(pictures)
    for got, want in zip(answer["predictions"], expected):
        assert got.pop("name") and set(got) == set(want)
        for key, value in want.items():
            assert got[key] == (pytest.approx(value, abs=1e-5) if isinstance(value, float) else value), key
    return {**facts, "explained": explained, "answers": answer["predictions"]}


def test_onnx_and_int8_exports_answer_as_zoo_load_does(digits_run, pictures, tmp_path):
    pytest.importorskip("onnxruntime")
    from zoo.inference.export import export_checkpoint, quantize_checkpoint

    checkpoint = digits_run.run_dir / "checkpoints" / "best.pt"
    float32 = export_checkpoint(checkpoint, "onnx", tmp_path / "best.onnx").path
    int8 = quantize_checkpoint(checkpoint, tmp_path / "best.int8.onnx").path
    answers = {}
    for source in (float32, int8):
        facts = _served_equal_loaded(source, pictures)
        assert facts["calibration"] is True and facts["explain"] is False
        status, kind, error = facts["explained"]
        assert (status, kind) == (422, "application/json")
        assert "ONNX file" in json.loads(error)["error"] and "\n" not in json.loads(error)["error"]
        answers[source] = [row["top_k"][0]["class"] for row in facts["answers"]]
    assert sum(a == b for a, b in zip(answers[float32], answers[int8])) >= PICTURES - 1


@pytest.mark.slow
def test_multilabel_and_autoencoder_runs_answer_as_zoo_load_does(tmp_path, pictures):
    from zoo.config import load_config, validate_config

    manifest = digit_sets(tmp_path / "sets", 300, 60)
    sets = zoo.train(load_config(ROOT / "configs" / "lenet5_digit_sets.yaml", [
        f"data.manifest={manifest}", f"train.output_dir={tmp_path / 'runs'}", "train.epochs=2"]), quiet=True)
    facts = _served_equal_loaded(sets.run_dir, pictures)
    assert facts["task"] == "multilabel" and facts["explain"] is True
    assert facts["explained"][:2] == (200, "image/png") and Image.open(io.BytesIO(facts["explained"][2])).width > 300
    assert all("labels" in row for row in facts["answers"])
    rebuilt = zoo.train(validate_config({
        "task": "reconstruction", "model": {"name": "conv_autoencoder"},
        "data": {"name": "digits", "input_size": 28, "batch_size": 32, "classes": [3]},
        "optimizer": {"name": "adam", "lr": 0.005}, "train": {"epochs": 2, "output_dir": str(tmp_path / "ae")}}),
        quiet=True)
    facts = _served_equal_loaded(rebuilt.run_dir, pictures)
    assert facts["task"] == "reconstruction" and facts["explain"] is False
    assert facts["explained"][0] == 422 and "autoencoder" in json.loads(facts["explained"][2])["error"]
    assert {row["verdict"] for row in facts["answers"]} <= {"normal", "abnormal"}


@pytest.mark.slow
def test_500_concurrent_clients_get_zoo_predicts_top1_without_an_error(served, digits_run, tmp_path):
    """The issue's bar: 500 clients at once, each posting one of 500 digit pictures, all answered as zoo predict."""
    from sklearn.datasets import load_digits

    url = served[0]
    encoded, paths = [], []
    for number, image in enumerate(load_digits().images[-500:]):
        path = tmp_path / f"{number:03d}.png"
        Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((32, 32)).save(path)
        paths.append(path)
        encoded.append(path.read_bytes())
    done = run_zoo("predict", digits_run.run_dir, tmp_path, "-f", "json", "--top-k", "1")
    assert done.returncode == 0, done.stderr
    expected = {Path(row["path"]).name: row["top_k"][0]["class"] for row in json.loads(done.stdout)["predictions"]}
    start = threading.Barrier(500)

    def client(number: int) -> tuple[int, str]:
        start.wait()
        status, answer = _ask(f"{url}/predict?top_k=1", encoded[number], "image/png")
        return status, answer["predictions"][0]["top_k"][0]["class"] if status == 200 else answer

    with ThreadPoolExecutor(500) as pool:
        answers = list(pool.map(client, range(500)))
    assert [status for status, _ in answers] == [200] * 500
    assert [label for _, label in answers] == [expected[path.name] for path in paths]


def test_sigterm_finishes_what_is_in_flight_and_exits_0(served, pictures):
    """A request half sent when SIGTERM comes is answered in full; then the process exits 0 and listens no more."""
    url, process, log = served
    host, port = url.removeprefix("http://").split(":")
    body, content_type = _multipart([(path.name, path.read_bytes()) for path in pictures])
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Type", content_type)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    connection.send(body[:len(body) // 2])
    time.sleep(0.5)  # the server has the request's head: it is in flight
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    connection.send(body[len(body) // 2:])
    answer = connection.getresponse()
    assert answer.status == 200 and len(json.loads(answer.read())["predictions"]) == PICTURES
    assert process.wait(60) == 0, log.read_text()
    with pytest.raises(urllib.error.URLError):  # it listens no more
        urllib.request.urlopen(f"{url}/health", timeout=5)


def test_without_the_serve_extra_one_line(tmp_path):
    fake = tmp_path / "fastapi"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no fastapi here')\n")
    done = run_zoo("serve", "any.pt", env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2
    assert done.stderr == "error: zoo serve needs the serve extra: pip install -e '.[serve]'\n"


def test_concurrent_pictures_run_in_batches_of_at_most_max_batch():
    pytest.importorskip("fastapi")
    import asyncio

    import torch

    from zoo.inference.serve import Batcher

    sizes: list[int] = []

    class Counting:  # a Predictor's decide, recording each batch's size
        def decide(self, batch, top_k, coverage):
            sizes.append(len(batch))
            return [(top_k, float(value)) for value in batch[:, 0]]

    async def twenty_requests() -> list:
        batcher = Batcher(Counting(), max_batch=8, max_wait_s=0.05)
        worker = asyncio.create_task(batcher.run())
        answers = await asyncio.gather(*(batcher.predict([torch.full((1,), number)], 1 + number % 2, None)
                                         for number in range(20)))
        worker.cancel()
        return answers

    answers = asyncio.run(twenty_requests())
    assert answers == [[(1 + number % 2, float(number))] for number in range(20)]  # each its own, in order
    assert sorted(sizes) == [2, 2, 4, 4, 4, 4]  # batches of 8, 8 and 4, each decided once per top_k asked
