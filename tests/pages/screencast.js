document.getElementById("toggle").addEventListener("click", () => document.body.classList.toggle("on"));
