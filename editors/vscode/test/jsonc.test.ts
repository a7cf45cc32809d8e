//! Reading settings.json as VS Code writes it: comments and trailing commas.

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseJsonc } from '../src/logic/jsonc';

test('comments and trailing commas are dropped, strings are left alone', () => {
  const text = `{
    // the adapter
    "ax.dap.path": "/opt/ax//ax-dap", /* a block
    comment */ "url": "http://x/*y*/",
    "quote": "a \\" // b",
    "list": [1, 2,],
  }`;
  assert.deepEqual(parseJsonc(text), { 'ax.dap.path': '/opt/ax//ax-dap', url: 'http://x/*y*/', quote: 'a " // b', list: [1, 2] });
});

test('text that is not JSON even then is undefined, not an exception', () => {
  assert.equal(parseJsonc('{"a": '), undefined);
  assert.equal(parseJsonc(''), undefined);
});
