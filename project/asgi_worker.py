"""gunicorn's worker class for the ASGI web process: `-k project.asgi_worker.Worker`.

uvicorn (httptools and uvloop when installed) under gunicorn's process management. uvicorn
writes its access lines through the `uvicorn.access` logger, not through gunicorn's logger
class, so URL credentials (screenshot and viewer tokens) are cut there too.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]  # ships no types

from project.access_log import RedactUrlTokens


class Worker(UvicornWorker):  # type: ignore[misc]  # untyped base class
    # lifespan "off": project.asgi has nothing to start or stop.
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "auto", "http": "auto", "lifespan": "off"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, RedactUrlTokens) for f in access.filters):
            access.addFilter(RedactUrlTokens())
