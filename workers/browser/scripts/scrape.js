// After markdown.js. arguments: {schema, format, selector, maxChars, maxItems}.
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
