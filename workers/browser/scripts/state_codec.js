// Saved state (workers/browser/saved_state.py): a lossless-enough JSON form of IndexedDB keys
// and values. Every object is tagged, so a stored object with a `$d` key is never read as a Date.
// Blobs and Files are not saved (they become undefined; `dropped` counts them).
const stateCodec = (() => {
  let dropped = 0;
  const b64 = (bytes) => {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  };
  const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const enc = (v) => {
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
    if (typeof v === 'number') return Number.isFinite(v) && !Object.is(v, -0) ? v : {$n: String(v)};
    if (v === undefined) return {$u: 1};
    if (typeof v === 'bigint') return {$bi: v.toString()};
    if (v instanceof Date) return {$d: v.getTime()};
    if (v instanceof ArrayBuffer) return {$ab: b64(new Uint8Array(v))};
    if (ArrayBuffer.isView(v)) {
      return {$ta: [v.constructor.name, b64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))]};
    }
    if (Array.isArray(v)) return {$a: v.map(enc)};
    if (v instanceof Map) return {$m: [...v].map(([k, x]) => [enc(k), enc(x)])};
    if (v instanceof Set) return {$s: [...v].map(enc)};
    if (v instanceof RegExp) return {$re: [v.source, v.flags]};
    if (typeof Blob !== 'undefined' && v instanceof Blob) { dropped += 1; return {$u: 1}; }
    const o = {};
    for (const k of Object.keys(v)) o[k] = enc(v[k]);
    return {$o: o};
  };
  const dec = (v) => {
    if (v === null || typeof v !== 'object') return v;
    if ('$o' in v) { const o = {}; for (const k of Object.keys(v.$o)) o[k] = dec(v.$o[k]); return o; }
    if ('$a' in v) return v.$a.map(dec);
    if ('$d' in v) return new Date(v.$d);
    if ('$n' in v) return Number(v.$n);
    if ('$u' in v) return undefined;
    if ('$bi' in v) return BigInt(v.$bi);
    if ('$ab' in v) return unb64(v.$ab).buffer;
    if ('$ta' in v) {
      const bytes = unb64(v.$ta[1]);
      const Type = globalThis[v.$ta[0]];
      if (v.$ta[0] === 'DataView') return new DataView(bytes.buffer);
      return new Type(bytes.buffer, 0, bytes.byteLength / Type.BYTES_PER_ELEMENT);
    }
    if ('$m' in v) return new Map(v.$m.map(([k, x]) => [dec(k), dec(x)]));
    if ('$s' in v) return new Set(v.$s.map(dec));
    if ('$re' in v) return new RegExp(v.$re[0], v.$re[1]);
    return v;
  };
  return {enc, dec, dropped: () => dropped};
})();
