// Any click on the page toggles the panel's colour (the screencast and live viewer tests click).
document.addEventListener("click", () => document.body.classList.toggle("on"));
