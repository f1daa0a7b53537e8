"""A store simulator's HTTP server: its Flask app on a free loopback port, in a daemon thread."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from werkzeug.serving import make_server


class SimulatedServer:
    app: Flask

    def __init__(self) -> None:
        self.origin = ""
        self._server: Any = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = make_server(host, port, self.app, threaded=True)
        self.origin = f"http://{host}:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self.origin

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
