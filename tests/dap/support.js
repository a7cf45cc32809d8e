// What the DebugClient tests share: where the binaries and sources are,
// breakpoint lines found by markers, and a started client.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { DebugClient } = require('@vscode/debugadapter-testsupport');

const root = path.resolve(__dirname, '..', '..');
const target = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
const bin = (name) => path.join(target, 'debug', name);
const lib = (crate) => bin(`lib${crate.replace(/-/g, '_')}.${process.platform === 'darwin' ? 'dylib' : 'so'}`);
// Breakpoint lines come from markers in the source, never hard-coded numbers.
const marker = (file, tag) => fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(tag)) + 1;
const wordCountSource = path.join(root, 'examples', 'word-count', 'src', 'lib.rs');
const count = (text) => ({ method: 'count', input: { text } });

/// ax-dap over stdio, with this build's `ax` as its host, started.
async function startClient() {
  const dc = new DebugClient(bin('ax-dap'), '--stdio', 'ax', { env: { ...process.env, AX_BIN: bin('ax') } });
  dc.defaultTimeout = 20000;
  await dc.start();
  return dc;
}

module.exports = { root, bin, lib, marker, wordCountSource, count, startClient };
