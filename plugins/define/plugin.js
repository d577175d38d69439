// define: a wasmbot behaviour plugin in JavaScript. "define WORD" gets the
// word's definitions from a dictionaryapi.dev-compatible service (setting
// `url`), fetched with the standard fetch() (over wasi:http: only hosts
// the operator granted this plugin answer). Imports are the host's
// interfaces from the repo's WIT; the component is built by
// `wasmbot build define` (componentize-js).

import { get } from 'wasmbot:plugin/config@0.2.0';
import { log } from 'wasmbot:plugin/log@0.2.0';
import { describe, lookupUrl, wordAsked } from './logic.js';

const DEFAULT_URL = 'https://api.dictionaryapi.dev/api/v2/entries/en/';

export const handler = {
  describe() {
    return {
      name: 'define',
      version: '0.1.0',
      description: 'Answers "define WORD" with its definitions',
      priority: 150,
      settings: [
        { key: 'url', default: DEFAULT_URL, description: 'dictionary API base URL (word appended)' },
      ],
      // Called only for messages that start with "define".
      triggers: [{ tag: 'prefix', val: 'define' }],
    };
  },

  async handle(msg) {
    const word = wordAsked(msg.body);
    if (word === null) return undefined; // not for us
    const url = lookupUrl(get('url') ?? DEFAULT_URL, word);
    let response;
    let body;
    try {
      response = await fetch(url, { headers: { accept: 'application/json' } });
      body = await response.text();
    } catch (e) {
      // A refused host or a failed exchange rejects (a TypeError).
      log('warn', `dictionary unreachable: ${e.message ?? e}`);
      return { text: `Sorry, I cannot look up "${word}" right now.`, media: [] };
    }
    if (response.status === 404) {
      return { text: `I found no definition of "${word}".`, media: [] };
    }
    const text = response.status === 200 ? describe(word, body) : null;
    if (text === null) {
      log('warn', `unexpected dictionary answer: HTTP ${response.status}`);
      return { text: `Sorry, I cannot look up "${word}" right now.`, media: [] };
    }
    return { text, media: [] };
  },
};
