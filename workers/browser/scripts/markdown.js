// Page text as Markdown, prepended to scrape.js. Hidden elements are skipped; links and images
// get absolute URLs.
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
