"""The recording replay page's script and style, served by the API itself (no CDN, no inline
code: the page's Content-Security-Policy allows scripts, styles, images and fetches from this
origin only)."""

REPLAY_CSS = """
html, body { margin: 0; background: #111; color: #ddd; font: 14px sans-serif; }
header { padding: 6px 10px; display: flex; gap: 12px; align-items: baseline; }
main { padding: 0 10px 10px; }
#screen { max-width: 100%; border: 1px solid #333; display: block; }
#controls { display: flex; gap: 8px; align-items: center; margin: 6px 0; }
#scrubber { flex: 1; }
#markers { position: relative; height: 14px; margin: 0 0 6px; }
#markers button { position: absolute; top: 0; width: 8px; height: 12px; padding: 0; border: 0;
  background: #6cf; cursor: pointer; transform: translateX(-4px); }
#markers button.error { background: #f66; }
"""

REPLAY_JS = r"""
(() => {
  const body = document.body;
  const img = document.getElementById("screen");
  const scrubber = document.getElementById("scrubber");
  const clock = document.getElementById("clock");
  const play = document.getElementById("play");
  const markers = document.getElementById("markers");
  let frames = [], start = 0, duration = 0, playing = false, timer = null, shown = -1;
  const fmt = (ms) => (ms / 1000).toFixed(1) + " s";
  const frameAt = (t) => {  // the last frame at or before t (ms from the start)
    let lo = 0, hi = frames.length - 1, found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (frames[mid].t - start <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  };
  const show = (t) => {
    const i = frameAt(t);
    if (i !== shown) {
      shown = i;
      img.src = body.dataset.frames + "/" + i;
      img.dataset.frame = String(i);
    }
    scrubber.value = String(t);
    clock.textContent = fmt(t) + " / " + fmt(duration);
  };
  const stop = () => { playing = false; play.textContent = "Play"; if (timer) clearInterval(timer); };
  play.addEventListener("click", () => {
    if (playing) { stop(); return; }
    playing = true; play.textContent = "Pause";
    let t = Number(scrubber.value); if (t >= duration) t = 0;
    const began = performance.now() - t;
    timer = setInterval(() => {
      const now = performance.now() - began;
      if (now >= duration) { show(duration); stop(); return; }
      show(now);
    }, 100);
  });
  scrubber.addEventListener("input", () => { stop(); show(Number(scrubber.value)); });
  fetch(body.dataset.index).then((r) => r.json()).then((index) => {
    frames = index.frames; duration = index.duration_ms;
    start = frames.length ? frames[0].t : 0;
    scrubber.max = String(duration);
    for (const action of index.actions) {
      const mark = document.createElement("button");
      const at = Math.max(0, Math.min(duration, action.t - start));
      // The action's frame: the page as it was when the action finished (at or after `t`).
      const own = action.frame === null || action.frame === undefined ? null : frames[action.frame];
      const jump = own ? Math.max(0, Math.min(duration, own.t - start)) : at;
      mark.style.left = (duration ? 100 * at / duration : 0) + "%";
      mark.title = action.type + " (" + action.status + ") at " + fmt(at);
      mark.dataset.frame = own ? String(action.frame) : "";
      if (action.status !== "succeeded") mark.className = "error";
      mark.addEventListener("click", () => { stop(); show(jump); });
      markers.appendChild(mark);
    }
    body.dataset.loaded = "true";
    body.dataset.actions = String(index.actions.length);
    show(0);
  });
})();
"""
