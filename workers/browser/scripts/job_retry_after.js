// Navigation Timing has no headers: ask the same URL again for its Retry-After, with a HEAD
// from the page itself (same origin, same cookies). Only after a 429 or 503.
const ctl = new AbortController();
setTimeout(() => ctl.abort(), 5000);
return fetch(location.href, {method: 'HEAD', cache: 'no-store', credentials: 'include', signal: ctl.signal})
  .then(r => r.headers.get('retry-after')).catch(() => null);
