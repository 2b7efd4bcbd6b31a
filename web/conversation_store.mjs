// Conversations kept in this browser (IndexedDB), for <intab-chat persist> (web/element.mjs) and
// the demo page: one record per key, {system, messages, savedAt}. Nothing here is ever sent
// anywhere (tests/browser/test_privacy.py audits the page's requests); forgetConversations()
// deletes the database, as the demo's "Forget everything" does.
//
// Why IndexedDB and not localStorage: a conversation of 200 turns is ~100 kB of text, and
// localStorage is synchronous (it would block the page on every save) and capped at ~5 MB per
// origin. A connection is opened per operation and closed at once, so deleteDatabase() from any
// tab is never blocked by one left open.

const DB = 'intab-conversations';
const STORE = 'conversations';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new DOMException('the conversation store is blocked by another tab', 'InvalidStateError'));
  });
}

async function run(mode, body) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = body(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new DOMException('the transaction was aborted', 'AbortError'));
    });
  } finally {
    db.close();
  }
}

/** The conversation kept under `key`: {system, messages, savedAt}, or null. */
export async function loadConversation(key) {
  const v = await run('readonly', (s) => s.get(String(key)));
  return v && Array.isArray(v.messages) ? v : null;
}

/** Keep `messages` ([{role, content}]) and `system` under `key` (replacing what was there). */
export function saveConversation(key, { system = '', messages = [] }) {
  const record = { system: String(system), messages: messages.map((m) => ({ role: String(m.role), content: String(m.content) })), savedAt: Date.now() };
  return run('readwrite', (s) => s.put(record, String(key)));
}

/** Every kept conversation's key. */
export function conversationKeys() {
  return run('readonly', (s) => s.getAllKeys()).then((keys) => keys.map(String));
}

/** Delete every kept conversation (the whole database). */
export function forgetConversations() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase(DB);
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
    req.onblocked = () => { /* resolves once the other tab's open operation ends */ };
  });
}
