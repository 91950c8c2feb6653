"""Where a browser lives: enough for any worker to attach to it, stop it or tell it is gone.

One value for every browser the service runs (a session's, a pooled one's, a batch job's): the
rows keep it in the six columns of `models.BrowserLocationColumns`, workers pass it to the
backends (workers/browser/). No Django import here: the browser package uses it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# A browser's flavour (docs/operations.md "Browser flavours"): full Chromium (CHROMIUM_BINARY,
# --headless=new) or Chromium's headless shell (CHROMIUM_HEADLESS_SHELL_BINARY). Chosen per
# browser: a session's create field `browser`, a job's `browser`, a warm pool per flavour.
CHROMIUM = "chromium"
HEADLESS_SHELL = "headless_shell"
BROWSER_FLAVOURS = (CHROMIUM, HEADLESS_SHELL)


@dataclass(frozen=True)
class BrowserLocation:
    backend: str
    webdriver_url: str
    webdriver_session_id: str
    host: str = ""
    browser_pid: int | None = None  # the process group a local backend kills
    profile_dir: str = ""

    def columns(self) -> dict[str, Any]:
        """The row columns that hold this location (for an UPDATE or a model's constructor)."""
        return asdict(self)
