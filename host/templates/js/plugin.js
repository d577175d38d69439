// {{name}}: a wasmbot behaviour plugin in JavaScript.
//
// Answers "ping" with "pong" (setting `reply`), and "status" with the HTTP
// status of its `status_url` setting, fetched with fetch(). The imports are
// the host's interfaces from wit/wasmbot.wit; `wasmbot build {{name}}` makes
// the component with componentize-js. Records are objects with camelCase
// fields, enums are strings, option<T> is T or undefined; a WIT result
// error from an import is thrown (its `payload` is { tag, val }), and
// throwing from handle() reports this plugin's failure. handle() may be
// async: its promise is resolved before the host gets the reply.

import { get } from 'wasmbot:plugin/config@0.2.0';
import { log } from 'wasmbot:plugin/log@0.2.0';
import { answer } from './logic.js';

export const handler = {
  describe() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      description: 'Answers ping with pong',
      priority: 100,
      settings: [
        { key: 'reply', default: 'pong', description: 'what to answer ping with' },
        // A URL setting also allows HTTP to its host.
        { key: 'status_url', default: 'https://status.example.com/', description: 'checked when someone sends "status"' },
      ],
      // The host calls handle() only for messages that match one of these:
      // tags word, contains, prefix, pattern (a regex), media (a
      // content-type prefix), or { tag: 'everything' }.
      triggers: [{ tag: 'word', val: 'ping' }, { tag: 'word', val: 'status' }],
    };
  },

  async handle(msg) {
    // Configuration: WASMBOT_{{env_name}}__REPLY or [plugins.{{name}}].
    const text = answer(msg.body, get('reply') ?? 'pong');
    if (text !== null) {
      log('info', `ping from ${msg.messageSid}`);
      return { text, media: [] };
    }
    if (msg.body.trim().toLowerCase() === 'status') {
      // fetch() goes out only to hosts the operator granted this plugin;
      // a refused host rejects with a TypeError.
      try {
        const response = await fetch(get('status_url') ?? '');
        return { text: `status: HTTP ${response.status}`, media: [] };
      } catch (e) {
        return { text: `status unknown: ${e.message ?? e}`, media: [] };
      }
    }
    return undefined; // not for us: stay silent
  },
};
