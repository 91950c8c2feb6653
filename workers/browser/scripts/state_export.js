// Runs as the body of an async function in an empty page of one origin (a scratch tab whose
// document the worker served itself): that origin's localStorage and IndexedDB, as JSON text.
const request = (r) => new Promise((ok, ko) => {
  r.onsuccess = () => ok(r.result);
  r.onerror = () => ko(r.error);
});
const out = {localStorage: Object.entries(localStorage), indexedDB: []};
const databases = indexedDB.databases ? await indexedDB.databases() : [];
for (const info of databases) {
  const db = await request(indexedDB.open(info.name));
  const stores = [];
  for (const name of db.objectStoreNames) {
    const store = db.transaction(name).objectStore(name);
    const indexes = [...store.indexNames].map((n) => {
      const index = store.index(n);
      return {name: n, keyPath: index.keyPath, unique: index.unique, multiEntry: index.multiEntry};
    });
    const records = await new Promise((ok, ko) => {
      const rows = [];
      const cursor = store.openCursor();
      cursor.onsuccess = () => {
        const at = cursor.result;
        if (!at) { ok(rows); return; }
        rows.push([stateCodec.enc(at.primaryKey), stateCodec.enc(at.value)]);
        at.continue();
      };
      cursor.onerror = () => ko(cursor.error);
    });
    stores.push({name, keyPath: store.keyPath, autoIncrement: store.autoIncrement, indexes, records});
  }
  out.indexedDB.push({name: info.name, version: db.version, stores});
  db.close();
}
out.dropped = stateCodec.dropped();
return JSON.stringify(out);
