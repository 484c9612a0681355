"""A small local HTTP server: one demo page and a JSON API over a :class:`Recommender`.

    python -m dpr_jax.recommend --run DIR --serve [--port 8000] [--host 127.0.0.1]

Endpoints (all JSON in UTF-8; errors are ``{"error": "<message>"}`` with status 400 / 404):

``GET /``
    The demo page (``page.html``): pick a user or type a few titles, type a request, see the
    list change next to the unprompted one.
``GET /api/info``
    ``{"dataset", "model", "num_users", "num_items", "tags": [..], "users": [first 500 ids],
    "examples": [prompts]}``.
``GET /api/items?q=<text>&limit=<n>``
    Items whose title contains ``q`` (case-insensitive): ``{"items": [{item, title, tags}]}``.
``POST /api/recommend``
    Body: ``{"user": "<id>"}`` or ``{"history": ["<item id or title>", ...]}``, plus optional
    ``"prompt": "<text>"`` and ``"k": <1..100>`` (default 10). Answer: see
    :meth:`dpr_jax.serve.recommender.Recommender.recommend` -- ``items`` (rank, item, title,
    tags, score), ``prompt_parts`` (positive / negative), ``explain`` (unprompted titles, entered,
    left, moved, tag shares before / after).

The server binds to localhost by default; it has no authentication and is meant for a demo on
one's own machine.
"""

from __future__ import annotations

import http.server
import json
import logging
import pathlib
import threading
import urllib.parse

from dpr_jax.errors import UserError
from dpr_jax.serve.recommender import Recommender, Request

PAGE = pathlib.Path(__file__).with_name("page.html")
MAX_BODY = 1 << 20
EXAMPLES = {
    "ml-1m": ["something light, no horror tonight", "a comedy, but no romance",
              "sci-fi or fantasy, nothing scary", "cartoons the little ones can watch",
              "I'm tired of dramas", "something like die hard, no war",
              "80s action movies, no comedy"],
    "mind": ["more sports news please", "catch me up on finance, but no sports",
             "nothing about the weather", "what's new in the world of celebrities"],
}


def make_handler(recommender: Recommender):
  """The request handler class bound to ``recommender`` (one lock: device calls in turn)."""
  lock = threading.Lock()
  data = recommender.data
  page = PAGE.read_bytes()
  info = {
      "dataset": data.manifest.get("name", recommender.config.data.name),
      "model": recommender.config.model.name, "num_users": data.num_users,
      "num_items": data.num_items, "tags": list(data.tag_names),
      "users": list(data.user_ids[:500]),
      "examples": EXAMPLES.get(recommender.config.dpr.domain, []),
  }

  class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "dpr_jax"

    def log_message(self, fmt, *args):  # quiet by default; --verbose logs through logging
      logging.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str):
      self.send_response(status)
      self.send_header("Content-Type", content_type)
      self.send_header("Content-Length", str(len(body)))
      self.send_header("Cache-Control", "no-store")
      self.end_headers()
      self.wfile.write(body)

    def _json(self, status: int, obj):
      self._send(status, json.dumps(obj).encode("utf-8"), "application/json; charset=utf-8")

    def do_GET(self):
      url = urllib.parse.urlsplit(self.path)
      if url.path in ("/", "/index.html"):
        return self._send(200, page, "text/html; charset=utf-8")
      if url.path == "/api/info":
        return self._json(200, info)
      if url.path == "/api/items":
        query = urllib.parse.parse_qs(url.query)
        q = query.get("q", [""])[0].casefold().strip()
        try:
          limit = min(int(query.get("limit", ["20"])[0]), 100)
        except ValueError:
          return self._json(400, {"error": "limit must be an integer"})
        hits = [i for i, t in enumerate(data.item_titles, start=1) if q and q in t.casefold()]
        return self._json(200, {"items": [recommender.item(i) for i in hits[:limit]]})
      return self._json(404, {"error": f"no such page: {url.path}"})

    def do_POST(self):
      if urllib.parse.urlsplit(self.path).path != "/api/recommend":
        return self._json(404, {"error": f"no such endpoint: {self.path}"})
      try:
        length = int(self.headers.get("Content-Length") or 0)
      except ValueError:
        length = -1
      if not 0 < length <= MAX_BODY:
        return self._json(400, {"error": f"send a JSON body of 1 byte to {MAX_BODY} bytes"})
      try:
        request = Request.from_json(json.loads(self.rfile.read(length).decode("utf-8")))
        with lock:
          answer = recommender.recommend(request)
      except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return self._json(400, {"error": f"body is not JSON: {e}"})
      except UserError as e:
        return self._json(400, {"error": str(e)})
      return self._json(200, answer)

  return Handler


def make_server(recommender: Recommender, host: str = "127.0.0.1",
                port: int = 8000) -> http.server.ThreadingHTTPServer:
  """A server bound to (host, port); port 0 picks a free one (``server.server_address``)."""
  try:
    return http.server.ThreadingHTTPServer((host, port), make_handler(recommender))
  except OSError as e:
    raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
