// Shared helpers, prepended to the scripts that need them (observe.js, step_find.js). Only
// function declarations and constants: each script is its own function body, so all that stays
// in the page is what observe leaves on purpose (data-bf-id attributes and window.__bfSeq).
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
