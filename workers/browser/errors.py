"""Our own browser errors: nothing outside workers.browser sees a Selenium exception."""


class BrowserError(Exception):
    """An error from the browser or its driver."""


class BrowserStartError(BrowserError):
    """The browser could not be started."""


class BrowserGone(BrowserError):
    """The browser or its WebDriver session no longer exists."""


class TransientBrowserError(BrowserError):
    """Worth one more try: a refused or reset connection while the driver was busy."""
