"""A local web page for exploring a trained generator: `python sample.py --workdir DIR --serve`.

Standard-library HTTP server, one page (explorer.html, no build step) and three JSON/picture routes:

  GET /                    the page; its URL (?style=&seed=&psi=) holds the state, so a picture
                           can be found again from a bookmark
  GET /api/model           {"workdir", "step", "styles": [names], "image_shape": [H, W, C]}
  GET /image.png?style=S&seed=N&psi=P
                           the picture of seed N in style S at truncation P, the same pixels as
                           `sample.py --seeds N --labels S --truncation P`, with its provenance
  GET /walk.gif?style=S&from=A&to=B&psi=P&frames=F
                           the spherical walk from seed A to seed B as a looping GIF

Pictures are made one request at a time (a lock): the generator is compiled once, at start-up.
"""

import http.server
import importlib.resources
import json
import math
import threading
import urllib.parse
from typing import Any

from jaxgan import sampling, trained
from jaxgan.errors import UserError

WALK_FRAMES = 24
WALK_FPS = 12


class BadRequest(ValueError):
    """A query the page should not have sent; answered with 400 and this message."""


def _query_value(query: dict[str, list[str]], name: str, default: str | None = None) -> str:
    values = query.get(name)
    if not values:
        if default is None:
            raise BadRequest(f"missing query parameter {name!r}")
        return default
    return values[0]


def _whole_number(query: dict[str, list[str]], name: str, low: int, high: int, default: str | None = None) -> int:
    text = _query_value(query, name, default)
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(f"{name}={text!r} must be a whole number {low}..{high}")
    return int(text)


def _truncation(query: dict[str, list[str]]) -> float:
    text = _query_value(query, "psi", "1")
    try:
        psi = float(text)
    except ValueError:
        psi = math.nan
    if not math.isfinite(psi) or psi < 0:
        raise BadRequest(f"psi={text!r} must be a finite number >= 0")
    return psi


class Explorer:
    """Answers the page's requests from one TrainedGAN."""

    def __init__(self, gan: trained.TrainedGAN, use_ema: bool = True):
        self.gan = gan
        self.use_ema = use_ema
        self.lock = threading.Lock()
        self.page = importlib.resources.files("jaxgan").joinpath("explorer.html").read_bytes()
        with self.lock:  # compile now, not on the first visitor's click
            gan.seed_images([0], [0] if gan.class_names else [], 1.0, use_ema)

    def _style(self, query: dict[str, list[str]]) -> tuple[int | None, str | None]:
        """(class index, class name) of the query's style; (None, None) for an unconditional model."""
        if not self.gan.class_names:
            return None, None
        name = _query_value(query, "style", self.gan.class_names[0])
        if name not in self.gan.class_names:
            raise BadRequest(f"style={name!r} is not one of {', '.join(self.gan.class_names)}")
        return self.gan.class_names.index(name), name

    def model(self) -> dict[str, Any]:
        return {"workdir": self.gan.workdir, "step": self.gan.step, "styles": list(self.gan.class_names),
                "image_shape": list(self.gan.image_shape)}

    def image_png(self, query: dict[str, list[str]]) -> bytes:
        seed, psi = _whole_number(query, "seed", 0, sampling.MAX_SEED), _truncation(query)
        label, name = self._style(query)
        with self.lock:
            image = self.gan.seed_images([seed], [] if label is None else [label], psi, self.use_ema)
        text = sampling.picture_provenance(self.gan.workdir, self.gan.step, seed, name, psi,
                                           use_ema=self.use_ema)
        return sampling.png_bytes(sampling.to_uint8(image)[0], text)

    def walk_gif(self, query: dict[str, list[str]]) -> bytes:
        seeds = [_whole_number(query, end, 0, sampling.MAX_SEED) for end in ("from", "to")]
        frames, psi = _whole_number(query, "frames", 2, 240, str(WALK_FRAMES)), _truncation(query)
        label, _ = self._style(query)
        with self.lock:
            pictures = self.gan.walk(seeds, label, frames, psi, self.use_ema)
        return sampling.animation_bytes(sampling.to_uint8(pictures), WALK_FPS, ".gif")


def make_handler(explorer: Explorer) -> type[http.server.BaseHTTPRequestHandler]:
    """The request handler class of a server answering from `explorer`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            routes = {"/": ("text/html; charset=utf-8", lambda: explorer.page),
                      "/api/model": ("application/json", lambda: json.dumps(explorer.model()).encode()),
                      "/image.png": ("image/png", lambda: explorer.image_png(query)),
                      "/walk.gif": ("image/gif", lambda: explorer.walk_gif(query))}
            if url.path not in routes:
                return self._send(404, "text/plain; charset=utf-8", f"no page at {url.path}\n".encode())
            content_type, make_body = routes[url.path]
            try:
                body = make_body()
            except BadRequest as e:
                return self._send(400, "text/plain; charset=utf-8", f"{e}\n".encode())
            self._send(200, content_type, body)

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # one line per request is noise in a terminal
            pass

    return Handler


def serve(gan: trained.TrainedGAN, host: str, port: int, use_ema: bool = True) -> None:
    """Serves the explorer of `gan` at http://host:port/ until interrupted (Ctrl-C)."""
    explorer = Explorer(gan, use_ema)
    try:
        server = http.server.ThreadingHTTPServer((host, port), make_handler(explorer))
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); pick another port with --port") from None
    url_host = f"[{host}]" if ":" in host else host
    print(f"Exploring step {gan.step} of {gan.workdir} at http://{url_host}:{server.server_address[1]}/ "
          f"(Ctrl-C stops).", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.")
    finally:
        server.server_close()
