"""`zoo serve`: a trained network behind HTTP, FastAPI on uvicorn (the serve extra).

    serve("runs/lenet5_digits/<time>", port=8000)    # until SIGTERM or Ctrl-C; prints its address once listening

    POST /predict   pictures as multipart `file` fields (one or more) or as the raw body; ?top_k=5, ?coverage=0.9.
                    {"predictions": [{"name": ..., **Prediction.to_dict()}, ...]}: zoo predict --format json's items
    GET /health     {"status": "ok"}
    GET /model      classes, input size, channels, task, versions, calibration, the run's test figures
    POST /explain   one picture: its heat map overlay as a PNG, as zoo explain draws it with its defaults (Grad-CAM, or
                    the model's own default method: occlusion for LeNet-5); a classifier's PyTorch network only
                    (checkpoint, .safetensors, torchvision weights: /model's "explain" says), else 422
    GET /           a page to choose or drop pictures and see their classes and heat maps (inline CSS and JS, nothing
                    fetched from elsewhere)
    GET /docs       FastAPI's OpenAPI page

The answers equal zoo predict's: the same `zoo.load` Predictor, each upload decoded as zoo.data.images.open_image
decodes a file (the first frame, EXIF orientation, display_rgb's modes) and preprocessed by `Predictor.prepare`, then
`Predictor.decide`. Pictures of concurrent requests are run together (`Batcher`): up to --max-batch of them, waiting at
most --max-wait-ms for more after the first, each batch in a worker thread so the event loop keeps answering. A heat
map runs alone, holding the Batcher's lock: Grad-CAM's hooks on the shared network must not see a batch's pass.
Refused with a 4xx JSON {"error": "..."} line, before any picture is queued: a body over --max-upload-mb (413,
read to its end and dropped so the client reads the answer), more than MAX_FILES pictures (413), a picture over
Pillow's MAX_IMAGE_PIXELS (413: decompression bombs, refused from the header), a file Pillow cannot read (415) or
decode (422), no picture (400), a bad top_k or coverage (422).
SIGTERM and SIGINT: uvicorn stops listening, finishes the requests in flight, and zoo serve exits 0.
"""

from __future__ import annotations

import asyncio
import collections
import io
import json
import signal
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zoo.errors import ZooError
from zoo.inference.load import Predictor, load

SERVE_EXTRA = "zoo serve needs the serve extra: pip install -e '.[serve]'"
try:  # the serve extra; zoo's CLI imports this module for zoo serve alone
    import python_multipart  # noqa: F401  (starlette parses multipart forms with it)
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException, MultiPartParser
except ImportError:
    raise ZooError(SERVE_EXTRA) from None

MAX_FILES = 64  # pictures in one request
TOP_K = 5  # classes per picture unless ?top_k= says (zoo predict's default)


@dataclass(frozen=True)
class Limits:
    """What one request may bring; beyond it the request is refused (4xx) and nothing of it is kept."""

    max_bytes: int = 20 * 2**20  # the body (--max-upload-mb 20)
    max_files: int = MAX_FILES
    max_pixels: int | None = None  # a picture's width x height; None: Pillow's MAX_IMAGE_PIXELS (about 89 M)


class Refused(Exception):
    """A request zoo serve does not run: its HTTP status and one line, as zoo's CLI errors read."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---- pictures ---------------------------------------------------------------------------------------------

def _reason(error: Exception) -> str:
    return next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)


def decode(data: bytes, name: str, predictor: Predictor, max_pixels: int | None = None) -> Tensor:
    """An uploaded picture -> C x H x W, as zoo predict reads the same file (zoo.data.images.open_image, then
    the Predictor's preprocessing). Raises Refused: 413 for more pixels than `max_pixels` (read from the header,
    nothing decoded), 415 for bytes Pillow reads as no picture, 422 for a picture it cannot decode."""
    from PIL import Image, UnidentifiedImageError

    from zoo.data.images import display_rgb

    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    bomb = f"{name} has more pixels than zoo serve decodes ({limit:,}); send it smaller"
    try:
        with warnings.catch_warnings():  # between 1x and 2x Pillow's limit it only warns: refused below, by size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise Refused(413, bomb) from None
    except UnidentifiedImageError:
        raise Refused(415, f"{name} is not a picture zoo reads (Pillow knows no such format); send a JPEG or PNG "
                           "file") from None
    except Exception as error:  # PIL reports damage as OSError, SyntaxError, struct.error, ValueError ...
        raise Refused(422, f"{name} cannot be decoded ({_reason(error)})") from None
    with image:
        if image.width * image.height > limit:
            raise Refused(413, bomb)
        try:
            image.load()
        except Exception as error:
            raise Refused(422, f"{name} cannot be decoded ({_reason(error)})") from None
        try:
            return predictor.prepare(image)  # EXIF orientation, display_rgb, the transform
        except ZooError as error:
            raise Refused(422, f"{name}: {error}") from None
        except Exception:  # an EXIF block Pillow cannot parse: the picture as stored, as open_image forgives it
            return predictor.transform(display_rgb(image))


# ---- batching ---------------------------------------------------------------------------------------------

@dataclass
class Item:
    picture: Tensor  # C x H x W, preprocessed
    top_k: int
    coverage: float | None
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Pictures of concurrent requests run as one batch: `run` (one task) takes the first waiting, then more until
    `max_batch` or `max_wait_s` after the first, decides them in a worker thread (the event loop goes on taking
    requests meanwhile) and resolves each picture's future. Pictures that arrive while a batch runs wait for the
    next: under load the batches fill without waiting."""

    def __init__(self, predictor: Predictor, max_batch: int = 64, max_wait_s: float = 0.005) -> None:
        self.predictor, self.max_batch, self.max_wait_s = predictor, max_batch, max_wait_s
        self.waiting: collections.deque[Item] = collections.deque()
        self.arrived = asyncio.Event()
        self.lock = threading.Lock()  # the network runs one pass at a time: a batch, or a heat map (Service.draw)

    async def predict(self, pictures: list[Tensor], top_k: int, coverage: float | None) -> list[Any]:
        """Each picture's Prediction (an autoencoder's AnomalyScore), in order, once its batch has run."""
        loop = asyncio.get_running_loop()
        items = [Item(picture, top_k, coverage, loop.create_future()) for picture in pictures]
        self.waiting.extend(items)
        self.arrived.set()
        return list(await asyncio.gather(*(item.future for item in items)))

    async def run(self) -> None:
        while True:
            items = await self.collect()
            try:
                records = await asyncio.to_thread(self.decide, items)
            except Exception as error:  # a ZooError of the Predictor: each request answers it
                records = [error] * len(items)
            for item, record in zip(items, records):
                if item.future.done():  # its request was cancelled (the client left)
                    continue
                if isinstance(record, Exception):
                    item.future.set_exception(record)
                else:
                    item.future.set_result(record)

    async def collect(self) -> list[Item]:
        """The next batch: 1 to max_batch pictures, in arrival order."""
        loop = asyncio.get_running_loop()
        while not self.waiting:
            self.arrived.clear()
            await self.arrived.wait()
        deadline = loop.time() + self.max_wait_s
        items = [self.waiting.popleft()]
        while len(items) < self.max_batch:
            if self.waiting:
                items.append(self.waiting.popleft())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            self.arrived.clear()
            try:  # an Event, not the queue's get, is waited on: a timeout loses nothing
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        return items

    def decide(self, items: list[Item]) -> list[Any]:
        """Records of `items`, one Predictor.decide per (top_k, coverage) the requests asked for."""
        with self.lock:
            return self._decide(items)

    def _decide(self, items: list[Item]) -> list[Any]:
        records: list[Any] = [None] * len(items)
        groups: dict[tuple[int, float | None], list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault((item.top_k, item.coverage), []).append(index)
        for (top_k, coverage), indices in groups.items():
            batch = torch.stack([items[index].picture for index in indices])
            for index, record in zip(indices, self.predictor.decide(batch, top_k, coverage)):
                records[index] = record
        return records


# ---- requests ---------------------------------------------------------------------------------------------

async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, or Refused 413 when it holds more than `max_bytes`: then it is read to its end and
    dropped, chunk by chunk, so that the client, still sending, reads the answer (a server that closes on unread
    bytes resets the connection, and the client loses the answer)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= max_bytes:
            chunks.append(chunk)
        elif chunks:
            chunks.clear()
    if size > max_bytes:
        raise Refused(413, f"the upload is {size / 2**20:.1f} MB, over zoo serve's {max_bytes / 2**20:g} MB "
                           "(--max-upload-mb); send fewer or smaller pictures")
    return b"".join(chunks)


async def uploads(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """(name, bytes) of each picture of a request: its multipart `file` fields, else its body as one picture.
    Raises Refused for a body over the limit, too many pictures, a damaged form, or no picture."""
    body = await read_body(request, limits.max_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        if not body:
            raise Refused(400, "no picture: send multipart `file` fields, or the picture's bytes as the body")
        return [("the request body", body)]

    async def replay() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(request.headers, replay(), max_files=limits.max_files, max_fields=limits.max_files)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        if "Too many files" in error.message:
            raise Refused(413, f"more than {limits.max_files} pictures in one request; send them in several") from None
        raise Refused(400, f"the multipart form is damaged ({error.message})") from None
    try:
        files = [(getattr(part, "filename", None) or f"file {number}", await part.read())
                 for number, part in enumerate(form.getlist("file"), 1) if not isinstance(part, str)]
    finally:
        await form.close()
    if not files:
        raise Refused(400, "no picture: the form has no `file` field holding a file")
    return files


def model_facts(predictor: Predictor) -> dict[str, Any]:
    """GET /model: what the served network is, and a run checkpoint's test figures (its run's metrics.json)."""
    import zoo

    preprocessing = predictor.preprocessing
    return {"source": predictor.source, "model": predictor.config.model.name if predictor.config else None,
            "task": predictor.task.name, "classes": predictor.classes, "in_channels": predictor.in_channels,
            "input_size": preprocessing.input_size if preprocessing is not None else None,
            "calibration": predictor.calibration is not None, "zoo_version": zoo.__version__,
            "torch_version": str(torch.__version__), "test": run_test_figures(Path(predictor.source))}


def run_test_figures(checkpoint: Path) -> dict[str, Any] | None:
    """metrics.json's test section of the run a checkpoint (runs/<name>/<time>/checkpoints/*.pt) belongs to; None
    for another source, or a run without (or with unreadable) figures."""
    if checkpoint.parent.name != "checkpoints":
        return None
    try:
        test = json.loads((checkpoint.parent.parent / "metrics.json").read_text()).get("test")
    except (OSError, ValueError, AttributeError):
        return None
    return test if isinstance(test, dict) else None


def error_answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# ---- the app ----------------------------------------------------------------------------------------------

UPLOAD_SCHEMA = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


class Service:
    """zoo serve's endpoints over one Predictor, its Batcher and the request Limits."""

    def __init__(self, predictor: Predictor, batcher: Batcher, limits: Limits) -> None:
        from zoo.inference.explain import why_not_explained

        self.predictor, self.batcher, self.limits = predictor, batcher, limits
        self.unexplained = why_not_explained(predictor)  # None: /explain draws heat maps
        self.layer: str | None = None  # Grad-CAM's layer, found at the first heat map

    async def predict(self, request: Request, top_k: int = TOP_K, coverage: float | None = None) -> JSONResponse:
        """Each picture's top-k classes and probabilities, its labels, and with a calibration whether it is
        unfamiliar (with ?coverage= its prediction set): zoo predict --format json's items, named by file."""
        if top_k < 1:
            raise Refused(422, f"top_k is {top_k}; give 1 or more")
        try:
            self.predictor.check_coverage(coverage)
        except ZooError as error:
            raise Refused(422, str(error).replace("--coverage", "coverage")) from None
        files = await uploads(request, self.limits)
        pictures = await run_in_threadpool(
            lambda: [decode(data, name, self.predictor, self.limits.max_pixels) for name, data in files])
        try:
            records = await self.batcher.predict(pictures, top_k, coverage)
        except ZooError as error:
            raise Refused(422, str(error)) from None
        return JSONResponse({"predictions": [{"name": name, **record.to_dict()}
                                             for (name, _), record in zip(files, records)]})

    async def explain(self, request: Request) -> Response:
        """One picture's heat map overlay, a PNG: zoo explain's picture with its defaults, for the page."""
        if self.unexplained is not None:
            raise Refused(422, self.unexplained)
        files = await uploads(request, self.limits)
        if len(files) > 1:
            raise Refused(400, f"{len(files)} pictures: /explain draws one at a time")
        name, data = files[0]
        picture = await run_in_threadpool(decode, data, name, self.predictor, self.limits.max_pixels)
        return Response(await run_in_threadpool(self.draw, picture, name), media_type="image/png")

    def draw(self, picture: Tensor, name: str) -> bytes:
        from zoo.inference.explain import explain_picture

        with self.batcher.lock:
            image, self.layer = explain_picture(self.predictor, picture, name, self.layer)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    async def model(self) -> dict[str, Any]:
        """The network served: classes, input, task, versions, calibration, its run's test figures."""
        return {**model_facts(self.predictor), "explain": self.unexplained is None}

    async def page(self) -> HTMLResponse:
        return HTMLResponse(PAGE)


def build_app(predictor: Predictor, max_batch: int = 64, max_wait_ms: float = 5.0,
              limits: Limits | None = None) -> FastAPI:
    """The FastAPI app of zoo serve over `predictor`; its lifespan runs the Batcher."""
    import zoo

    batcher = Batcher(predictor, max_batch, max_wait_ms / 1000)
    service = Service(predictor, batcher, limits or Limits())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = asyncio.create_task(batcher.run())
        yield  # uvicorn has finished the requests in flight
        worker.cancel()

    app = FastAPI(title="zoo serve", version=zoo.__version__, lifespan=lifespan,
                  description=f"{predictor.source}: POST pictures to /predict")
    app.post("/predict", openapi_extra=UPLOAD_SCHEMA)(service.predict)
    app.post("/explain", openapi_extra=UPLOAD_SCHEMA, response_class=Response,
             responses={200: {"content": {"image/png": {}}}})(service.explain)
    app.get("/health")(service.health)
    app.get("/model")(service.model)
    app.get("/", include_in_schema=False)(service.page)
    app.add_exception_handler(Refused, lambda request, error: error_answer(error.status, str(error)))
    app.add_exception_handler(HTTPException, lambda request, error: error_answer(error.status_code, error.detail))
    app.add_exception_handler(RequestValidationError, lambda request, error: error_answer(422, "; ".join(
        f"{'.'.join(map(str, problem['loc'][1:]))}: {problem['msg']}" for problem in error.errors())))
    return app


# ---- the server -------------------------------------------------------------------------------------------

def serve(source: str | Path, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 64,
          max_wait_ms: float = 5.0, max_upload_mb: float = 20, device: str = "auto",
          announce: Callable[[str], None] | None = None) -> None:
    """Serve the network at `source` (anything zoo.load opens) on http://host:port until SIGTERM or SIGINT, then
    finish the requests in flight and return. `announce` gets "serving ... on http://host:port ..." once it
    listens (default: printed on stdout, flushed); port 0 takes a free one, which the line names. Raises ZooError
    as zoo.load does, and for a limit that is not positive."""
    for name, value, low in (("--max-batch", max_batch, 1), ("--max-wait-ms", max_wait_ms, 0),
                             ("--max-upload-mb", max_upload_mb, 1e-9), ("--port", port, 0)):
        if value < low or name == "--port" and value > 65535:
            raise ZooError(f"{name} {value}: give " + ("a port, 0 to 65535" if name == "--port" else
                                                       f"a number of at least {low:g}" if low else "0 or more"))
    predictor = load(source, device)
    if getattr(predictor, "vocabulary", None) is not None:  # a TextPredictor: its predict takes sentences
        raise ZooError(f"{source} is a text network (it reads sentences) and zoo serve takes pictures; classify "
                       "sentences with zoo predict SOURCE --text, or zoo.load(SOURCE).predict([...]) in your service")
    app = build_app(predictor, max_batch, max_wait_ms, Limits(max_bytes=int(max_upload_mb * 2**20)))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    say = announce or (lambda line: print(line, flush=True))
    _until_signal(server, lambda bound: say(f"serving {source} on http://{host}:{bound} (page /, API /docs)"))


def _until_signal(server: uvicorn.Server, started: Callable[[int], None]) -> None:
    """Run `server`, calling `started(port)` once it listens. On SIGTERM or SIGINT uvicorn drains, then raises the
    signal again for its default action (death by it, exit status -15): a handler that ignores it, left in place
    meanwhile, makes the drained service return, and zoo serve exit 0."""
    main = threading.current_thread() is threading.main_thread()
    previous = {number: signal.signal(number, lambda *_: None) for number in (signal.SIGINT, signal.SIGTERM)} \
        if main else {}

    async def watch() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started:
            started(server.servers[0].sockets[0].getsockname()[1])
        await serving

    try:
        asyncio.run(watch())
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if not server.started:  # uvicorn logs why (the port in use ...) and gives up
        raise ZooError(f"zoo serve could not listen on {server.config.host}:{server.config.port}; "
                       "see the line above (another --port?)")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zoo serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{font:15px system-ui,sans-serif;margin:2em auto;max-width:860px;padding:0 1em;color:#222}
#drop{border:2px dashed #999;border-radius:8px;padding:2em;text-align:center;cursor:pointer}
#drop.over{background:#eef4ff;border-color:#36c}
.card{display:flex;gap:1em;align-items:flex-start;border-bottom:1px solid #ddd;padding:.8em 0}
.card>img{width:96px;height:96px;object-fit:contain;background:#f4f4f4;image-rendering:pixelated}
.row{display:flex;align-items:center;gap:.5em;margin:2px 0}.bar{height:10px;background:#36c;border-radius:2px}
.name{color:#666;font-size:13px}.label{font-weight:600;font-size:17px}.flag{color:#b60;font-weight:600}
.error{color:#b00}.heat{display:block;max-width:100%;margin-top:.5em}
</style></head><body>
<h1>zoo serve</h1><p id="model" class="name"></p>
<label id="drop">Drop pictures here, or click to choose them
<input id="files" type="file" accept="image/*" multiple hidden></label>
<div id="results"></div>
<script>
const drop = document.getElementById('drop'), input = document.getElementById('files');
const results = document.getElementById('results');
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; return e; };
let explained = false;
fetch('model').then(r => r.json()).then(m => { explained = m.explain; document.getElementById('model').textContent =
  `${m.model || m.source} · ${m.task} · ${m.classes.length} classes` + (m.test && m.test.accuracy !== undefined ?
  ` · test accuracy ${(100 * m.test.accuracy).toFixed(2)}%` : ''); });
function show(file, answer) {
  const card = el('div', 'card'), img = el('img'), body = el('div');
  img.src = URL.createObjectURL(file); img.alt = file.name; card.append(img, body);
  body.append(el('div', 'name', file.name));
  if (answer.error) { body.append(el('div', 'error', answer.error)); results.prepend(card); return; }
  body.append(el('div', 'label', (answer.labels || []).join(', ') || answer.top_k[0].class));
  if (answer.unfamiliar) body.append(el('div', 'flag', 'unfamiliar: unlike the pictures it was trained on'));
  for (const t of answer.top_k) { const row = el('div', 'row'), bar = el('div', 'bar');
    bar.style.width = Math.max(1, 200 * t.probability) + 'px';
    row.append(el('span', '', t.class), bar, el('span', 'name', (100 * t.probability).toFixed(1) + '%'));
    body.append(row); }
  results.prepend(card);
  if (explained) heat(file, body);
}
async function heat(file, body) {
  const form = new FormData(); form.append('file', file, file.name);
  const r = await fetch('explain', {method: 'POST', body: form});
  if (!r.ok) { body.append(el('div', 'error', (await r.json()).error)); return; }
  const img = el('img', 'heat'); img.alt = 'heat map of ' + file.name;
  img.src = URL.createObjectURL(await r.blob()); body.append(img);
}
async function send(files) {
  for (const file of files) {
    const form = new FormData(); form.append('file', file, file.name);
    let answer;
    try { const r = await fetch('predict?top_k=3', {method: 'POST', body: form}); const j = await r.json();
      answer = r.ok ? j.predictions[0] : j; } catch (e) { answer = {error: String(e)}; }
    show(file, answer);
  }
}
input.addEventListener('change', () => { send([...input.files]); input.value = ''; });
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over');
  send([...e.dataTransfer.files]); });
</script></body></html>
"""
