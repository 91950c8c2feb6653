// The API keys page: a Copy button for the key shown once (no inline code: the CSP forbids it).
// Without JavaScript the key is still there to select and copy by hand.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    var status = button.parentNode.querySelector("[data-copy-status]");
    if (!source || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () { if (status) { status.textContent = "Copied."; } },
        function () { if (status) { status.textContent = "Copy failed: select the key and copy it."; } }
      );
    });
  });
});
