"""What of a browser error a tenant may read.

Errors from chromedriver, a Selenium Grid and urllib3 name the driver's address and the
WebDriver session id (Grid: "Unable to execute request for session 4f2c... on node
http://10.0.3.7:5555"; urllib3: "HTTPConnection(host='127.0.0.1', port=39231)"). With those, a
tenant learns where browsers live and, on a Grid, holds the key to attach to its browser
outside our API. They stay in our logs; the message the tenant reads has them replaced.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# urllib3: HTTPConnectionPool(host='h', port=1) / HTTPConnection(host='h', port=1)
_URLLIB3_TARGET = re.compile(r"HTTPS?Connection(?:Pool)?\(host='[^']*', port=\d+\)")
_CONNECTION_OBJECT = re.compile(r"<urllib3\.[^>]*>")


def tenant_error_text(message: str, *, webdriver_url: str, webdriver_session_id: str) -> str:
    text = _URLLIB3_TARGET.sub("the browser's driver", message)
    text = _CONNECTION_OBJECT.sub("a connection", text)
    if webdriver_url:
        base = webdriver_url.rstrip("/")
        text = text.replace(base, "<driver>")
        netloc = urlsplit(base).netloc
        if netloc:
            text = text.replace(netloc, "<driver>")
    if webdriver_session_id:
        text = text.replace(webdriver_session_id, "<session>")
    return text
