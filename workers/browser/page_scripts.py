"""JavaScript that actions.py runs in the page, as WebDriver script bodies (`arguments[0]` ...).

Each action sends one script that does all of its page work, because every WebDriver round trip
costs several milliseconds while walking the DOM in the page costs far less. Scripts return plain
JSON (or element references) and report page-side problems as `{"error": ..., "message": ...}`
instead of throwing, so that Python can tell "your selector is wrong" from "the browser broke".

Coordinates: scripts work in CSS pixels and multiply by the `scale` they are given when they
report boxes, because the API speaks screenshot pixels.
"""

from __future__ import annotations

# Shared helpers, prepended to the scripts that need them. Only function declarations and
# constants: each script is its own function body, so all that stays in the page is what observe
# leaves on purpose (data-bf-id attributes and the window.__bfSeq counter).
_HELPERS = r"""
const INTERACTIVE = [
  'a[href]', 'button', 'input:not([type="hidden"])', 'select', 'textarea', 'summary',
  '[role="button"]', '[role="link"]', '[role="checkbox"]', '[role="radio"]', '[role="switch"]',
  '[role="tab"]', '[role="menuitem"]', '[role="menuitemcheckbox"]', '[role="menuitemradio"]',
  '[role="option"]', '[role="combobox"]', '[role="textbox"]', '[role="searchbox"]',
  '[role="slider"]', '[role="spinbutton"]', '[role="treeitem"]', '[onclick]',
  '[contenteditable=""]', '[contenteditable="true"]', '[tabindex]:not([tabindex="-1"])',
].join(', ');
const INPUT_ROLES = {
  checkbox: 'checkbox', radio: 'radio', button: 'button', submit: 'button', reset: 'button',
  image: 'button', file: 'button', color: 'button', range: 'slider', number: 'spinbutton',
  search: 'searchbox',
};

function norm(s) { return String(s == null ? '' : s).replace(/\s+/g, ' ').trim(); }
function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; }

function isVisible(el) {
  const r = el.getBoundingClientRect();
  if (r.width < 1 || r.height < 1) return false;
  if (!el.checkVisibility) return true;
  // Both spellings: Chromium renamed the options and accepts either.
  return el.checkVisibility({
    opacityProperty: true, visibilityProperty: true, checkOpacity: true, checkVisibilityCSS: true,
  });
}

function roleOf(el) {
  const explicit = norm(el.getAttribute('role'));
  if (explicit) return explicit.split(' ')[0];
  switch (el.localName) {
    case 'a': return el.hasAttribute('href') ? 'link' : 'generic';
    case 'button': case 'summary': return 'button';
    case 'select': return el.multiple || el.size > 1 ? 'listbox' : 'combobox';
    case 'textarea': return 'textbox';
    case 'label': return 'label';
    case 'input': return INPUT_ROLES[(el.type || 'text').toLowerCase()] || 'textbox';
  }
  return el.isContentEditable ? 'textbox' : 'clickable';
}

function isField(el) {
  return el.localName === 'input' || el.localName === 'textarea' || el.localName === 'select';
}

// The accessible name, roughly: what a person would call the element.
function nameOf(el) {
  const aria = norm(el.getAttribute('aria-label'));
  if (aria) return aria;
  const labelledBy = el.getAttribute('aria-labelledby');
  if (labelledBy) {
    const text = norm(labelledBy.split(/\s+/).map((id) => {
      const ref = document.getElementById(id);
      return ref ? ref.innerText : '';
    }).join(' '));
    if (text) return text;
  }
  if (isField(el)) {
    const type = (el.type || '').toLowerCase();
    if ((type === 'submit' || type === 'button' || type === 'reset') && el.value) return norm(el.value);
    if (type === 'image' && el.alt) return norm(el.alt);
    const labels = el.labels ? norm(Array.from(el.labels).map((l) => l.innerText).join(' ')) : '';
    if (labels) return labels;
    return norm(el.getAttribute('placeholder') || el.getAttribute('title') || '');
  }
  const text = norm(el.innerText);
  if (text) return text;
  const img = el.querySelector('img[alt]');
  if (img && norm(img.alt)) return norm(img.alt);
  const labelled = el.querySelector('[aria-label]');
  return norm(el.getAttribute('title') || el.getAttribute('alt')
    || (labelled ? labelled.getAttribute('aria-label') : ''));
}

function valueOf(el) {
  if (el.localName === 'select') {
    const picked = Array.from(el.selectedOptions || []).map((o) => norm(o.text));
    return picked.join(', ');
  }
  if (el.localName === 'textarea') return el.value;
  if (el.localName === 'input') {
    const type = (el.type || 'text').toLowerCase();
    if (type === 'password') return el.value ? '\u2022'.repeat(el.value.length) : '';
    if (['checkbox', 'radio', 'submit', 'button', 'reset', 'image', 'file'].includes(type)) return null;
    return el.value;
  }
  return null;
}

function isUnique(selector, el) {
  try {
    const found = document.querySelectorAll(selector);
    return found.length === 1 && found[0] === el;
  } catch (e) {
    return false;
  }
}

// A selector that survives a reload: ids and test ids first, then names, then a tag path.
function selectorOf(el) {
  const tag = CSS.escape(el.localName);
  if (el.id) {
    const s = '#' + CSS.escape(el.id);
    if (isUnique(s, el)) return s;
  }
  for (const attr of ['data-testid', 'data-test-id', 'data-test', 'data-qa', 'data-cy']) {
    const v = el.getAttribute(attr);
    if (v) {
      const s = `${tag}[${attr}="${CSS.escape(v)}"]`;
      if (isUnique(s, el)) return s;
    }
  }
  const name = el.getAttribute('name');
  if (name) {
    let s = `${tag}[name="${CSS.escape(name)}"]`;
    if (isUnique(s, el)) return s;
    const value = el.getAttribute('value');
    if (value != null) {
      s += `[value="${CSS.escape(value)}"]`;
      if (isUnique(s, el)) return s;
    }
  }
  return pathOf(el);
}

// Per parent: each child's position among siblings of its tag, and how many of each tag there
// are. Built once per script run: list pages share parents with thousands of children.
const SIBLINGS = new Map();

function siblingsOf(parent) {
  let entry = SIBLINGS.get(parent);
  if (!entry) {
    entry = { index: new Map(), count: new Map() };
    for (let child = parent.firstElementChild; child; child = child.nextElementSibling) {
      const n = (entry.count.get(child.localName) || 0) + 1;
      entry.count.set(child.localName, n);
      entry.index.set(child, n);
    }
    SIBLINGS.set(parent, entry);
  }
  return entry;
}

function pathOf(el) {
  const parts = [];
  for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
    if (node !== el && node.id && isUnique('#' + CSS.escape(node.id), node)) {
      parts.unshift('#' + CSS.escape(node.id));
      break;
    }
    const tag = CSS.escape(node.localName);
    const parent = node.parentElement;
    if (!parent) {
      parts.unshift(tag);
      break;
    }
    const siblings = siblingsOf(parent);
    const several = siblings.count.get(node.localName) > 1;
    parts.unshift(several ? `${tag}:nth-of-type(${siblings.index.get(node)})` : tag);
  }
  return parts.join(' > ');
}

function nextElementId() {
  if (typeof window.__bfSeq !== 'number') {
    // A fresh window over a restored DOM (back/forward cache) may already carry ids.
    let max = 0;
    for (const el of document.querySelectorAll('[data-bf-id]')) {
      const n = parseInt(el.getAttribute('data-bf-id').slice(1), 10);
      if (n > max) max = n;
    }
    window.__bfSeq = max;
  }
  window.__bfSeq += 1;
  return 'e' + window.__bfSeq;
}

function docOrder(a, b) {
  if (a === b) return 0;
  return a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1;
}

function pageSize() {
  const d = document.documentElement;
  const b = document.body;
  return {
    width: Math.max(d.scrollWidth, b ? b.scrollWidth : 0, d.clientWidth),
    height: Math.max(d.scrollHeight, b ? b.scrollHeight : 0, d.clientHeight),
  };
}

// Visible, interactive elements in or near the viewport, tagged with data-bf-id.
function observePage(maxElements, scale) {
  const vw = window.innerWidth;
  const vh = window.innerHeight;
  const inView = (r) => r.bottom > 0 && r.right > 0 && r.top < vh && r.left < vw;
  // "Near": one screen below and half a screen above, so that the next scroll is visible too.
  const near = (r) => r.bottom > -vh / 2 && r.top < vh * 2 && r.right > 0 && r.left < vw;
  const considered = new Set();
  const picked = [];
  const pickedEls = new Set();
  const consider = (el) => {
    if (considered.has(el)) return;
    considered.add(el);
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || !near(r)) return;
    if (el.closest('[aria-hidden="true"], [inert]') || !isVisible(el)) return;
    picked.push({ el, r, inView: inView(r) });
    pickedEls.add(el);
  };
  for (const el of document.querySelectorAll(INTERACTIVE)) consider(el);
  // A label is the thing to click when its input is hidden (custom checkboxes and radios).
  for (const label of document.querySelectorAll('label')) {
    if (label.control && !pickedEls.has(label.control)) consider(label);
  }
  // Script-driven widgets often have no tag or role to say so, only cursor: pointer. The
  // outermost such element counts; the style is read for a bounded number of candidates.
  let styleBudget = 2000;
  const candidates = document.body
    ? document.body.querySelectorAll('div, span, li, img, svg, i, td, p, h1, h2, h3, h4, h5, h6')
    : [];
  for (const el of candidates) {
    if (styleBudget <= 0) break;
    if (considered.has(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || !near(r)) continue;
    styleBudget -= 1;
    if (getComputedStyle(el).cursor !== 'pointer') continue;
    const parent = el.parentElement;
    if (parent && getComputedStyle(parent).cursor === 'pointer') continue;
    if (el.closest(INTERACTIVE + ', label')) continue;
    consider(el);
  }
  picked.sort((a, b) => docOrder(a.el, b.el));
  let chosen = picked;
  const truncated = picked.length > maxElements;
  if (truncated) {
    // Keep what is on screen first, then fill up with what is near it.
    const onScreen = picked.filter((p) => p.inView);
    const offScreen = picked.filter((p) => !p.inView);
    chosen = onScreen.concat(offScreen).slice(0, maxElements);
    chosen.sort((a, b) => docOrder(a.el, b.el));
  }
  // All reads before any write: each new attribute invalidates style, and the next read of a
  // box or of innerText would lay out the whole page again.
  const described = chosen.map(({ el, r, inView: visibleNow }) => describe(el, r, scale, visibleNow));
  const usedIds = new Set();
  const elements = chosen.map(({ el }, i) => {
    let id = el.getAttribute('data-bf-id');
    // Cloned nodes copy the attribute: an id seen twice gets a fresh one.
    if (!id || usedIds.has(id)) {
      id = nextElementId();
      el.setAttribute('data-bf-id', id);
    }
    usedIds.add(id);
    return { id, ...described[i] };
  });
  return {
    url: location.href,
    title: document.title,
    viewport: { width: vw, height: vh, scale },
    scroll: { x: window.scrollX, y: window.scrollY },
    page: pageSize(),
    elements,
    truncated,
  };
}

function describe(el, r, scale, visibleNow) {
  const value = valueOf(el);
  const item = {
    role: roleOf(el),
    tag: el.localName,
    text: clip(nameOf(el) || norm(value || ''), 200),
    selector: selectorOf(el),
    bbox: {
      x: Math.round(r.left * scale),
      y: Math.round(r.top * scale),
      width: Math.round(r.width * scale),
      height: Math.round(r.height * scale),
    },
    in_viewport: visibleNow,
  };
  if (typeof el.href === 'string' && el.href) item.href = clip(el.href, 500);
  if (isField(el) || el.localName === 'button') item.type = (el.type || el.localName).toLowerCase();
  if (el.disabled || el.getAttribute('aria-disabled') === 'true') item.disabled = true;
  if (value != null && value !== '') item.value = clip(String(value), 200);
  if (el.localName === 'input' && (el.type === 'checkbox' || el.type === 'radio')) item.checked = el.checked;
  else if (el.hasAttribute('aria-checked')) item.checked = el.getAttribute('aria-checked') === 'true';
  return item;
}
"""

PAGE_CONTEXT = r"""
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
"""

URL_AND_TITLE = "return {url: location.href, title: document.title};"

# arguments: maxElements, scale
OBSERVE = _HELPERS + "\nreturn observePage(arguments[0], arguments[1]);\n"

# An async script: arguments are target, op, value, timeoutMs, then WebDriver's callback.
# It polls in the page (no round trip per try) until the target is usable or time runs out,
# then does the page-side half of the step and returns the element for the WebDriver half.
_STEP_FIND = r"""
const [target, op, value, timeoutMs] = arguments;
const done = arguments[arguments.length - 1];
const deadline = performance.now() + timeoutMs;
// The element must be visible for these; a hidden <select> can still be set from script.
const NEEDS_VISIBLE = new Set(['click', 'fill', 'hover', 'press', 'wait_for']);
const VALUE_TYPES = new Set(['date', 'time', 'datetime-local', 'month', 'week', 'color', 'range']);
const TRUTHY = new Set(['true', 'on', 'yes', '1', 'checked']);

function queryAll(selector) {
  try {
    return document.querySelectorAll(selector);
  } catch (e) {
    throw { error: 'bad_target', message: `Invalid CSS selector ${JSON.stringify(selector)}` };
  }
}

function firstVisible(list) {
  let first = null;
  for (const el of list) {
    if (isVisible(el)) return el;
    if (!first) first = el;
  }
  return first;
}

function byText(text) {
  const needle = norm(text).toLowerCase();
  if (!needle) return null;
  // 1. Something interactive whose name is the text (exactly, else containing it).
  const word = needle.split(' ')[0];
  let partial = null;
  for (const el of document.querySelectorAll(INTERACTIVE + ', label')) {
    if (!mayBeNamed(el, word)) continue;
    if (!isVisible(el) && !(el.localName === 'select')) continue;
    const name = nameOf(el).toLowerCase();
    if (name === needle) return el;
    if (!partial && name.includes(needle)) partial = el;
  }
  if (partial) return partial;
  // 2. The element around a text node that holds the text.
  const walker = document.createTreeWalker(document.body || document.documentElement, NodeFilter.SHOW_TEXT);
  let loose = null;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!norm(node.data).toLowerCase().includes(needle)) continue;
    const el = node.parentElement;
    if (!el || !isVisible(el)) continue;
    if (norm(el.innerText).toLowerCase() === needle) return el;
    if (!loose) loose = el;
  }
  if (loose) return loose;
  // 3. Text split over several nodes ("Hello <b>world</b>"): the deepest visible element
  // around its first occurrence (document order visits an element before its descendants).
  let deepest = null;
  for (const el of (document.body || document.documentElement).querySelectorAll('*')) {
    if (deepest && !deepest.contains(el)) break;
    if (!norm(el.textContent).toLowerCase().includes(needle)) continue;
    if (isVisible(el) && norm(el.innerText).toLowerCase().includes(needle)) deepest = el;
  }
  return deepest;
}

// A cheap test that rules out most elements before nameOf (which reads innerText, a layout
// query) on pages with thousands of links. It passes everything whose name may not be in its
// own text or attributes.
function mayBeNamed(el, word) {
  if (isField(el) || el.hasAttribute('aria-labelledby')) return true;
  const text = el.textContent;
  if (!text.trim()) return true;
  const attrs = ' ' + (el.getAttribute('aria-label') || '') + ' ' + (el.getAttribute('title') || '');
  return (text + attrs).toLowerCase().includes(word);
}

function find() {
  if (target.element_id != null) {
    return firstVisible(queryAll(`[data-bf-id="${CSS.escape(String(target.element_id))}"]`));
  }
  if (target.selector != null) return firstVisible(queryAll(String(target.selector)));
  if (target.text != null) return byText(String(target.text));
  throw { error: 'bad_target', message: 'The target needs a selector, an element_id or a text' };
}

// The form field an element stands for: itself, its label's control, or one inside it.
function controlOf(el) {
  if (isField(el) || el.isContentEditable) return el;
  if (el.localName === 'label' && el.control) return el.control;
  return el.querySelector(
    'input:not([type="hidden"]), textarea, select, [contenteditable=""], [contenteditable="true"]');
}

function info(el) {
  return {
    tag: el.localName,
    text: clip(nameOf(el), 200),
    selector: selectorOf(el),
    id: el.getAttribute('data-bf-id'),
  };
}

// Sets a value the way a framework notices: the prototype's setter (React tracks the
// instance's), then the events a person's edit would fire.
function setValue(el, text) {
  const proto = el.localName === 'textarea' ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, text);
  el.dispatchEvent(new Event('input', { bubbles: true }));
  el.dispatchEvent(new Event('change', { bubbles: true }));
}

function selectOption(el, wanted) {
  if (el.localName !== 'select') {
    return { error: 'op', message: `<${el.localName}> is not a <select>; click its option instead` };
  }
  const want = norm(wanted);
  const options = Array.from(el.options);
  const option = options.find((o) => o.value === wanted)
    || options.find((o) => norm(o.text) === want)
    || options.find((o) => norm(o.text).toLowerCase() === want.toLowerCase())
    || options.find((o) => norm(o.text).toLowerCase().includes(want.toLowerCase()));
  if (!option) {
    const choices = options.slice(0, 20).map((o) => norm(o.text)).join(', ');
    const message = `No option ${JSON.stringify(wanted)} in the select (options: ${choices})`;
    return { error: 'op', message };
  }
  if (option.disabled) {
    return { error: 'op', message: `Option ${JSON.stringify(norm(option.text))} is disabled` };
  }
  option.selected = true;
  el.dispatchEvent(new Event('input', { bubbles: true }));
  el.dispatchEvent(new Event('change', { bubbles: true }));
  return { done: true, selected: { value: option.value, text: norm(option.text) } };
}

function prepare(el) {
  switch (op) {
    case 'click':
    case 'wait_for':
      return { element: el, info: info(el) };
    case 'fill': {
      const field = controlOf(el);
      if (!field) return { error: 'op', message: `<${el.localName}> is not a form field` };
      if (field.localName === 'select') return { ...selectOption(field, value), info: info(field) };
      const type = (field.type || '').toLowerCase();
      // A path typed into a file input would upload that file from the browser's machine.
      if (field.localName === 'input' && type === 'file') {
        return { error: 'op', message: 'File inputs cannot be filled' };
      }
      if (field.localName === 'input' && (type === 'checkbox' || type === 'radio')) {
        const want = TRUTHY.has(norm(value).toLowerCase());
        // A radio cannot be unchecked by clicking it.
        const click = field.checked !== want && (want || type === 'checkbox');
        return { element: field, info: info(field), click };
      }
      if (field.disabled || field.readOnly) {
        const state = field.disabled ? 'disabled' : 'read-only';
        return { error: 'op', message: `<${field.localName}> is ${state}` };
      }
      if (field.localName === 'input' && VALUE_TYPES.has(type)) {
        // Key strokes into these depend on the locale's format; setting the value does not.
        setValue(field, value);
        return { info: info(field), done: true };
      }
      // Cleared and focused here so that the WebDriver half only types.
      if (field.isContentEditable && !isField(field)) field.textContent = '';
      else if (field.value) setValue(field, '');
      field.focus();
      return { element: field, info: info(field) };
    }
    case 'select': {
      const field = controlOf(el) || el;
      return { ...selectOption(field, value), info: info(field) };
    }
    case 'press':
      el.focus();
      return { element: el, info: info(el) };
    case 'hover':
    case 'scroll_into_view': {
      let r = el.getBoundingClientRect();
      const visibleNow = r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
      if (op === 'scroll_into_view' || !visibleNow) {
        el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
        r = el.getBoundingClientRect();
      }
      return { element: el, info: info(el), x: r.left + r.width / 2, y: r.top + r.height / 2 };
    }
  }
  return { error: 'op', message: `Unknown step action ${JSON.stringify(op)}` };
}

let hiddenMatch = false;
function poll() {
  let el;
  try {
    el = find();
  } catch (e) {
    done(e && e.error ? e : { error: 'bad_target', message: String((e && e.message) || e) });
    return;
  }
  if (el && (!NEEDS_VISIBLE.has(op) || isVisible(el))) {
    try {
      done(prepare(el));
    } catch (e) {
      done({ error: 'op', message: String((e && e.message) || e) });
    }
    return;
  }
  hiddenMatch = hiddenMatch || !!el;
  if (performance.now() >= deadline) {
    done({ error: 'not_found', hidden: hiddenMatch });
    return;
  }
  setTimeout(poll, 50);
}
poll();
"""
STEP_FIND = _HELPERS + _STEP_FIND

# Page text as Markdown. Hidden elements are skipped; links and images get absolute URLs.
_MARKDOWN = r"""
const SKIP = new Set(['script', 'style', 'noscript', 'template', 'svg', 'canvas', 'iframe', 'head',
  'meta', 'link', 'object', 'embed', 'audio', 'video', 'input', 'select', 'textarea', 'option',
  'datalist', 'map']);
const BLOCK = new Set(['p', 'div', 'section', 'article', 'main', 'header', 'footer', 'nav', 'aside',
  'form', 'fieldset', 'figure', 'figcaption', 'details', 'summary', 'address', 'dl', 'dt', 'dd',
  'legend', 'center', 'body', 'html']);

// Stand-ins that whitespace clean-up leaves alone: list indentation and preformatted text.
const INDENT = '\u0001';
const PRE_SPACE = '\u0002';
const PRE_NEWLINE = '\u0003';
const PRE_TAB = '\u0004';

function oneLine(s) { return s.replace(/\s+/g, ' ').trim(); }
function clean(s) { return s.replace(/[ \t]*\n[ \t]*/g, '\n').replace(/\n{3,}/g, '\n\n'); }
function keepVerbatim(s) {
  return s.replace(/ /g, PRE_SPACE).replace(/\t/g, PRE_TAB).replace(/\n/g, PRE_NEWLINE);
}

function toMarkdown(root) {
  const walk = (node, ctx) => {
    if (node.nodeType === Node.TEXT_NODE) return ctx.pre ? node.data : node.data.replace(/\s+/g, ' ');
    if (node.nodeType !== Node.ELEMENT_NODE) return '';
    const el = node;
    const tag = el.localName;
    if (SKIP.has(tag)) return '';
    if (el.checkVisibility && !el.checkVisibility({ visibilityProperty: true, checkVisibilityCSS: true })) {
      return '';
    }
    const inner = (c = ctx) => Array.from(el.childNodes).map((child) => walk(child, c)).join('');
    if (/^h[1-6]$/.test(tag)) return `\n\n${'#'.repeat(Number(tag[1]))} ${oneLine(inner())}\n\n`;
    switch (tag) {
      case 'br': return '\n';
      case 'hr': return '\n\n---\n\n';
      case 'a': {
        const text = oneLine(inner());
        const href = el.href;
        if (!text) return '';
        if (typeof href !== 'string' || !href || href.startsWith('javascript:')) return text;
        return `[${text}](${href})`;
      }
      case 'img': {
        const src = el.currentSrc || el.src;
        if (!src || src.startsWith('data:')) return el.alt ? oneLine(el.alt) : '';
        return `![${oneLine(el.alt || '')}](${src})`;
      }
      case 'strong': case 'b': { const t = oneLine(inner()); return t ? `**${t}**` : ''; }
      case 'em': case 'i': { const t = oneLine(inner()); return t ? `*${t}*` : ''; }
      case 'code': {
        if (ctx.pre) return inner();
        const t = oneLine(inner());
        return t ? '`' + t + '`' : '';
      }
      case 'pre': {
        const body = inner({ ...ctx, pre: true }).replace(/\n+$/, '');
        return '\n\n```' + PRE_NEWLINE + keepVerbatim(body) + PRE_NEWLINE + '```\n\n';
      }
      case 'blockquote': {
        const body = clean(inner()).trim();
        return '\n\n' + body.split('\n').map((line) => '> ' + line).join('\n') + '\n\n';
      }
      case 'ul': case 'ol': {
        let n = Number(el.getAttribute('start') || 1);
        const items = [];
        for (const li of el.children) {
          if (li.localName !== 'li' || (li.checkVisibility && !li.checkVisibility())) continue;
          const marker = tag === 'ol' ? `${n++}. ` : '- ';
          const lines = clean(Array.from(li.childNodes).map((c) => walk(c, ctx)).join(''))
            .trim().replace(/\n+/g, '\n').split('\n');
          // Continuation lines (and nested lists) sit under the item's text.
          const pad = INDENT.repeat(marker.length);
          items.push(marker + lines[0] + lines.slice(1).map((line) => '\n' + pad + line).join(''));
        }
        return '\n\n' + items.join('\n') + '\n\n';
      }
      case 'table': {
        const rows = Array.from(el.rows || []).map((row) => '| ' + Array.from(row.cells)
          .map((cell) => oneLine(walk(cell, ctx)).replace(/\|/g, '\\|')).join(' | ') + ' |');
        if (!rows.length) return '';
        const width = el.rows[0].cells.length;
        rows.splice(1, 0, '| ' + Array(width).fill('---').join(' | ') + ' |');
        return '\n\n' + rows.join('\n') + '\n\n';
      }
      case 'li': return '\n- ' + oneLine(inner()) + '\n';
      case 'tr': return '\n' + inner() + '\n';
      case 'td': case 'th': return ' ' + inner() + ' ';
    }
    return BLOCK.has(tag) ? `\n\n${inner()}\n\n` : inner();
  };
  return clean(walk(root, { pre: false }))
    .trim()
    .replaceAll(INDENT, ' ')
    .replaceAll(PRE_SPACE, ' ')
    .replaceAll(PRE_TAB, '\t')
    .replaceAll(PRE_NEWLINE, '\n');
}
"""

# arguments: {schema, format, selector, maxChars, maxItems}
_SCRAPE = r"""
const opts = arguments[0];
const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'poster', 'cite', 'data',
  'longdesc', 'background', 'manifest', 'codebase']);

class SchemaError extends Error {}

function isUrlAttr(name) { return URL_ATTRS.has(name) || /(^|[-_])(href|src|url)$/.test(name); }

function absolute(value) {
  try {
    return new URL(value, document.baseURI).href;
  } catch (e) {
    return value;
  }
}

function queryAll(scope, selector, path) {
  try {
    return Array.from(scope.querySelectorAll(selector));
  } catch (e) {
    throw new SchemaError(`${path}: invalid CSS selector ${JSON.stringify(selector)}`);
  }
}

function read(el, attr) {
  switch (attr) {
    case 'text': return oneLine(el.innerText != null ? el.innerText : el.textContent || '');
    case 'html': return el.innerHTML;
    case 'outer_html': return el.outerHTML;
  }
  const value = el.getAttribute(attr);
  if (value == null) return null;
  return isUrlAttr(attr) ? absolute(value.trim()) : value;
}

function extract(scope, spec, path) {
  if (typeof spec === 'string') spec = { selector: spec };
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new SchemaError(`${path}: a field is a CSS selector or an object with "selector"`);
  }
  const selector = spec.selector == null ? '' : String(spec.selector);
  // No selector: the scope itself (say, the href of a card that is an <a>).
  const matches = selector ? queryAll(scope, selector, path) : [scope];
  const attr = String(spec.attr || 'text');
  const one = (el) => (spec.fields ? extractFields(el, spec.fields, path) : read(el, attr));
  if (spec.list) return matches.slice(0, opts.maxItems).map(one);
  return matches.length ? one(matches[0]) : null;
}

function extractFields(scope, fields, path) {
  if (!fields || typeof fields !== 'object' || Array.isArray(fields)) {
    throw new SchemaError(`${path}: "fields" must be an object of name: field`);
  }
  const out = {};
  for (const [name, spec] of Object.entries(fields)) out[name] = extract(scope, spec, `${path}.${name}`);
  return out;
}

let root = document.body || document.documentElement;
if (opts.selector) {
  try {
    root = document.querySelector(opts.selector);
  } catch (e) {
    return { error: 'bad_target', message: `Invalid CSS selector ${JSON.stringify(opts.selector)}` };
  }
  if (!root) return { error: 'not_found', message: `No element matches ${JSON.stringify(opts.selector)}` };
}
const result = { url: location.href, title: document.title };
if (opts.schema) {
  // {"fields": {...}} with an optional selector and list; a bare {name: field} map is the fields.
  const schema = 'fields' in opts.schema ? opts.schema : { fields: opts.schema };
  try {
    result.data = extract(root, schema, 'schema');
  } catch (e) {
    if (e instanceof SchemaError) return { error: 'schema', message: e.message };
    throw e;
  }
}
let text = null;
if (opts.format === 'text') text = root.innerText || '';
else if (opts.format === 'markdown') text = toMarkdown(root);
if (text != null) {
  result.truncated = text.length > opts.maxChars;
  result[opts.format] = result.truncated ? text.slice(0, opts.maxChars) : text;
}
return result;
"""
SCRAPE = _MARKDOWN + _SCRAPE
