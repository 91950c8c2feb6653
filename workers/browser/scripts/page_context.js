// The page's URL, title, viewport, size and scroll, for include_context.
const d = document.documentElement;
const b = document.body;
return {
  url: location.href,
  title: document.title,
  viewport_width: window.innerWidth,
  viewport_height: window.innerHeight,
  page_width: Math.max(d.scrollWidth, b ? b.scrollWidth : 0, d.clientWidth),
  page_height: Math.max(d.scrollHeight, b ? b.scrollHeight : 0, d.clientHeight),
  scroll_x: window.scrollX,
  scroll_y: window.scrollY,
  device_scale_factor: window.devicePixelRatio,
};
