// A tenant page trying the browser's own DevTools endpoint (its port in ?port=).
const port = new URLSearchParams(location.search).get("port");
const result = document.getElementById("result");
const ws = new WebSocket(`ws://127.0.0.1:${port}/devtools/browser`);
ws.onopen = () => { result.textContent = "websocket:open"; ws.close(); };
ws.onerror = () => { result.textContent = "websocket:error"; };
