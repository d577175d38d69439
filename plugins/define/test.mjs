// Native tests of the define logic: node --test (run by cargo test).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describe, lookupUrl, wordAsked } from './logic.js';

test('wordAsked', () => {
  assert.equal(wordAsked('define Serendipity'), 'serendipity');
  assert.equal(wordAsked('  DEFINE cat? '), 'cat');
  assert.equal(wordAsked("define rock'n'roll"), "rock'n'roll");
  assert.equal(wordAsked('define'), null);
  assert.equal(wordAsked('please define cat'), null);
  assert.equal(wordAsked('define two words'), null);
});

test('lookupUrl', () => {
  assert.equal(lookupUrl('https://d.example/en', 'cat'), 'https://d.example/en/cat');
  assert.equal(lookupUrl('https://d.example/en/', "o'k"), "https://d.example/en/o'k");
});

test('describe', () => {
  const json = JSON.stringify([
    { word: 'cat', meanings: [
      { partOfSpeech: 'noun', definitions: [{ definition: 'A small domesticated feline.' }] },
      { partOfSpeech: 'verb', definitions: [{ definition: ' To vomit. ' }] },
      { partOfSpeech: 'adjective', definitions: [{ definition: 'Third, dropped.' }] },
    ] },
  ]);
  assert.equal(describe('cat', json), 'cat (noun): A small domesticated feline.\ncat (verb): To vomit.');
  assert.equal(describe('cat', '{"title":"No Definitions Found"}'), null);
  assert.equal(describe('cat', 'not json'), null);
  assert.equal(describe('cat', '[{"meanings":[]}]'), null);
});
