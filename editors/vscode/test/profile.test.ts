//! The status bar's profile age: words for ages, taken_at over the file time,
//! a file that is not a profile.

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { formatAge, profilePath, profileStatus } from '../src/logic/profile';

test('ages in words', () => {
  assert.equal(formatAge(0), 'just now');
  assert.equal(formatAge(4_999), 'just now');
  assert.equal(formatAge(42_000), '42 s ago');
  assert.equal(formatAge(5 * 60_000 + 59_000), '5 min ago');
  assert.equal(formatAge(3 * 3600_000), '3 h ago');
  assert.equal(formatAge(47 * 3600_000), '47 h ago');
  assert.equal(formatAge(3 * 86400_000), '3 days ago');
  assert.equal(formatAge(-10_000), 'in the future (clock skew?)');
  assert.equal(formatAge(Number.NaN), 'at an unknown time');
});

test('the profile of a crate is in its .ax, of a library beside it', () => {
  assert.equal(profilePath('/ws/counter', 'dir'), path.join('/ws/counter', '.ax', 'profile.json'));
  assert.equal(profilePath('/build/libcounter.so', 'file'), path.join('/build', '.ax', 'profile.json'));
});

const now = Date.parse('2026-11-27T01:00:00Z');
const profile = (takenAt: string) =>
  JSON.stringify({ format: 'ax-profile', version: 1, taken_at: takenAt, runs: 2, command: 'ax run --profile counter --calls c.jsonl' });

test('taken_at gives the age, not the file time', () => {
  const status = profileStatus('/ws/counter', { text: profile('2026-11-27T00:55:00Z'), mtimeMs: now }, now);
  assert.equal(status.text, '$(flame) counter: profiled 5 min ago');
  assert.match(status.tooltip, /2 run\(s\), last taken 2026-11-27T00:55:00Z\nby: ax run --profile counter --calls c.jsonl/);
});

test('a file that is not a profile falls back to its time, and says so', () => {
  const status = profileStatus('/ws/counter', { text: '{"trunc', mtimeMs: now - 7_200_000 }, now);
  assert.equal(status.text, '$(flame) counter: profiled 2 h ago');
  assert.match(status.tooltip, /file time; not readable as an ax profile/);
});

test('no profile yet', () => {
  const status = profileStatus('/ws/counter', undefined, now);
  assert.equal(status.text, '$(flame) counter: no profile');
  assert.match(status.tooltip, /click to profile it/);
});
