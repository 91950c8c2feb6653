// A batch job's page, after the load, in one script (each WebDriver round trip costs
// milliseconds): the main document's HTTP status (Chromium fills Navigation Timing's
// responseStatus), Chromium's own error page, the wait for a selector, then the `scrape`
// action's extraction (scrape.js, whose body page_scripts.py puts in place of SCRAPE_BODY).
// arguments[0]: the scrape options; arguments[1]: {selector, timeout_ms} or null.
const opts = arguments[0], waitFor = arguments[1];
const nav = performance.getEntriesByType('navigation')[0];
const page = {url: location.href, title: document.title,
              status: nav && nav.responseStatus ? nav.responseStatus : null};
if (page.url.startsWith('chrome-error://')) {
  const e = document.querySelector('.error-code');
  page.errorCode = e ? e.textContent.trim() : '';
  return page;
}
if (page.status && page.status >= 400) return page;
const scrape = () => {
  try {
    page.scrape = (function () {
/*SCRAPE_BODY*/
    }).apply(null, [opts]);
  } catch (e) {
    page.scrapeError = String((e && e.message) || e);
  }
  return page;
};
if (!waitFor) return scrape();
const deadline = Date.now() + waitFor.timeout_ms;
return new Promise((resolve) => {
  const look = () => {
    let found;
    try { found = document.querySelector(waitFor.selector); } catch (e) {
      page.waitFor = 'bad_selector'; resolve(page); return;
    }
    if (found) resolve(scrape());
    else if (Date.now() >= deadline) { page.waitFor = 'timeout'; resolve(page); }
    else setTimeout(look, 50);
  };
  look();
});
