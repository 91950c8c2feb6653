"""The API as the web process serves it (project/asgi.py, under uvicorn), in the test process.

Replaces pytest-django's `live_server` (a threaded WSGI server): flows go through the same ASGI
application, the same web thread pool and the same stream handler as `bin/dev web`. In-process,
so it shares the test database settings; a thread runs uvicorn's event loop.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from django.test.utils import modify_settings


class AsgiLiveServer:
    def __init__(self) -> None:
        import uvicorn
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        from project.asgi import application as project_application

        # Static files from the apps' directories, as pytest-django's live server served them
        # (production serves `collectstatic`'s output through WhiteNoise; tests never collect).
        application = ASGIStaticFilesHandler(project_application)

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            application, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning",
            access_log=False, timeout_graceful_shutdown=2,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="asgi-live-server", daemon=True)
        # What pytest-django's `_live_server_helper` enables around each test.
        self._live_server_modified_settings = modify_settings(ALLOWED_HOSTS={"append": "127.0.0.1"})

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ASGI test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __str__(self) -> str:
        return self.url

    def __add__(self, other: Any) -> str:
        return f"{self}{other}"
