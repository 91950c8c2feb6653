"""The live viewer's script and style, served by the API itself (no CDN, no inline code: the
viewer page's Content-Security-Policy allows scripts and styles from this origin only)."""

VIEWER_CSS = """
html, body { margin: 0; background: #111; color: #ddd; font: 14px sans-serif; }
header { padding: 6px 10px; display: flex; gap: 12px; align-items: baseline; }
.mode { color: #999; }
main { padding: 0 10px 10px; }
#screen { max-width: 100%; border: 1px solid #333; outline: none; cursor: crosshair; }
"""

VIEWER_JS = r"""
(() => {
  const body = document.body;
  const img = document.getElementById("screen");
  const state = document.getElementById("state");
  const interactive = body.dataset.interactive === "true";
  let device = null;
  const feed = new EventSource(body.dataset.feed);
  feed.onopen = () => { state.textContent = "live"; };
  feed.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    img.src = "data:image/jpeg;base64," + frame.image_data;
    device = frame.metadata;
    img.dataset.frames = String(Number(img.dataset.frames) + 1);
    img.dataset.width = String(frame.metadata.width);
    img.dataset.height = String(frame.metadata.height);
  };
  feed.onerror = () => {
    if (feed.readyState === EventSource.CLOSED) { state.textContent = "ended"; return; }
    state.textContent = "reconnecting";
  };
  if (!interactive) return;
  const send = (action) => fetch(body.dataset.input, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({action}),
  });
  const point = (event) => {
    const rect = img.getBoundingClientRect();
    const w = (device && device.device_width) || img.naturalWidth;
    const h = (device && device.device_height) || img.naturalHeight;
    return {
      x: Math.round((event.clientX - rect.left) * w / rect.width),
      y: Math.round((event.clientY - rect.top) * h / rect.height),
    };
  };
  img.addEventListener("click", (event) => { img.focus(); send({type: "click", ...point(event)}); });
  img.addEventListener("dblclick", (event) => send({type: "double_click", ...point(event)}));
  img.addEventListener("wheel", (event) => {
    event.preventDefault();
    send({type: "scroll", ...point(event), dx: Math.round(event.deltaX), dy: Math.round(event.deltaY)});
  }, {passive: false});
  img.addEventListener("keydown", (event) => {
    event.preventDefault();
    if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey) {
      send({type: "type", text: event.key});
    } else {
      const keys = [];
      if (event.ctrlKey) keys.push("Control");
      if (event.altKey) keys.push("Alt");
      if (event.metaKey) keys.push("Meta");
      if (event.shiftKey && event.key.length !== 1) keys.push("Shift");
      if (!["Control", "Alt", "Meta", "Shift"].includes(event.key)) keys.push(event.key);
      if (keys.length) send({type: "hotkey", keys});
    }
  });
})();
"""
