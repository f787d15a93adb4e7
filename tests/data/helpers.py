"""Helpers for the data tests: a local HTTP server and a planted pickle payload."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import threading
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/broken/<name>`` promises the whole file but sends only half of it."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.hits.append(self.path)
        if self.path.startswith("/broken/"):
            data = (Path(self.directory) / self.path.removeprefix("/broken/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


class LocalServer:
    """An HTTP server on 127.0.0.1 (random port) in a thread, serving ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        handler = functools.partial(_Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.hits = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.running = True

    @property
    def hits(self) -> list[str]:
        return self.httpd.hits

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


def md5_of(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


class _Planted:
    """Unpickling this with the standard pickle module creates the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def planted_pickle(canary: Path) -> bytes:
    """A CIFAR-like batch whose ``b"data"`` value creates ``canary`` when unpickled."""
    return pickle.dumps({b"data": _Planted(canary), b"labels": [0]}, protocol=2)
