// The console's script on every page (no inline code: the Content-Security-Policy forbids it).
// Pages work without it; with it, parts marked data-refresh-url replace themselves with a fresh
// copy every data-refresh-seconds (the Usage page draws its charts with usage.js).
"use strict";

(function () {
  function refresh(element) {
    var url = element.getAttribute("data-refresh-url");
    var seconds = parseInt(element.getAttribute("data-refresh-seconds") || "5", 10);
    function tick() {
      if (document.hidden) { schedule(); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 429) { return null; }
          if (!response.ok) { throw new Error("refresh failed: " + response.status); }
          return response.text();
        })
        .then(function (html) {
          if (html !== null) {
            element.innerHTML = html;
            element.setAttribute("data-refreshed-at", new Date().toISOString());
          }
        })
        .catch(function () { element.setAttribute("data-refresh-error", "1"); })
        .finally(schedule);
    }
    function schedule() { window.setTimeout(tick, seconds * 1000); }
    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-url]").forEach(refresh);
  });
})();
