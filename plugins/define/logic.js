// The "define" behaviour as plain JavaScript: when to answer, the URL to
// ask, and how to read a dictionaryapi.dev-style answer. Tested natively
// with `node --test` (test.mjs); plugin.js is the component glue.

/** The word asked for in `body` ("define serendipity"), or null. */
export function wordAsked(body) {
  const match = /^\s*define\s+([A-Za-z][A-Za-z'-]{0,40})\s*[?.!]?\s*$/i.exec(body);
  return match ? match[1].toLowerCase() : null;
}

/** The lookup URL for `word` under the configured base URL. */
export function lookupUrl(base, word) {
  return base.replace(/\/?$/, '/') + encodeURIComponent(word);
}

/**
 * The reply for the upstream's JSON text: "word (part of speech): definition",
 * up to `max` meanings, or null when the answer holds no definition.
 */
export function describe(word, json, max = 2) {
  let entries;
  try {
    entries = JSON.parse(json);
  } catch {
    return null;
  }
  if (!Array.isArray(entries)) return null;
  const lines = [];
  for (const entry of entries) {
    for (const meaning of entry?.meanings ?? []) {
      const definition = meaning?.definitions?.[0]?.definition;
      if (typeof definition === 'string' && definition.trim() && lines.length < max) {
        const part = typeof meaning.partOfSpeech === 'string' ? ` (${meaning.partOfSpeech})` : '';
        lines.push(`${word}${part}: ${definition.trim()}`);
      }
    }
  }
  return lines.length ? lines.join('\n') : null;
}
