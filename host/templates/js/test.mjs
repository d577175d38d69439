import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answer } from './logic.js';

test('answers ping only', () => {
  assert.equal(answer(' PING ', 'pong'), 'pong');
  assert.equal(answer('pingpong', 'pong'), null);
});
