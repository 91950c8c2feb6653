// After helpers.js. An async script: arguments are target, op, value, timeoutMs, then
// WebDriver's callback. It polls in the page (no round trip per try) until the target is usable
// or time runs out, then does the page-side half of the step and returns the element for the
// WebDriver half.
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
