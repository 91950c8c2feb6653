// Runs as the body of an async function in an empty page of one origin, with `data` (one
// origin's part of a saved state): replaces that origin's localStorage and IndexedDB with it, and
// sets the tab's sessionStorage items it names.
const request = (r) => new Promise((ok, ko) => {
  r.onsuccess = () => ok(r.result);
  r.onerror = () => ko(r.error);
  r.onblocked = () => ko(new Error('database ' + data.name + ' is open elsewhere'));
});
localStorage.clear();
for (const [key, value] of data.localStorage) localStorage.setItem(key, value);
for (const [key, value] of data.sessionStorage || []) sessionStorage.setItem(key, value);
for (const saved of data.indexedDB) {
  await request(indexedDB.deleteDatabase(saved.name));
  const opening = indexedDB.open(saved.name, saved.version);
  opening.onupgradeneeded = () => {
    for (const s of saved.stores) {
      const store = opening.result.createObjectStore(s.name, {keyPath: s.keyPath, autoIncrement: s.autoIncrement});
      for (const i of s.indexes) store.createIndex(i.name, i.keyPath, {unique: i.unique, multiEntry: i.multiEntry});
    }
  };
  const db = await request(opening);
  if (saved.stores.length) {
    const tx = db.transaction(saved.stores.map((s) => s.name), 'readwrite');
    for (const s of saved.stores) {
      const store = tx.objectStore(s.name);
      for (const [key, value] of s.records) {
        if (s.keyPath === null) store.put(stateCodec.dec(value), stateCodec.dec(key));
        else store.put(stateCodec.dec(value));
      }
    }
    await new Promise((ok, ko) => { tx.oncomplete = ok; tx.onerror = () => ko(tx.error); tx.onabort = () => ko(tx.error); });
  }
  db.close();
}
return true;
