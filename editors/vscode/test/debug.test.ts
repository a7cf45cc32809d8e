//! F5 without a launch.json, for real: the configuration the provider's logic
//! fills for word-count (the plugin of the open file, its remembered calls
//! file) is launched in the real `ax-dap` with Microsoft's `DebugClient`, stops
//! at the probe and runs the call.

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

import { DebugClient } from '@vscode/debugadapter-testsupport';

import { checkPaths, resolveConfiguration } from '../src/logic/launch';
import { pluginDirs } from '../src/logic/plugins';
import { attributes, built, repoRoot } from './support';

const plugin = path.join(repoRoot, 'examples', 'word-count');
const source = path.join(plugin, 'src', 'lib.rs');
// Breakpoint lines come from markers in the source, never hard-coded numbers.
const probeLine = fs.readFileSync(source, 'utf8').split('\n').findIndex((l) => l.includes('// #PROBE')) + 1;

function kind(p: string): 'file' | 'dir' | undefined {
  if (!fs.existsSync(p)) return undefined;
  return fs.statSync(p).isDirectory() ? 'dir' : 'file';
}

test('F5 without launch.json: the filled configuration stops at the probe in the real ax-dap', async () => {
  const adapter = built('ax-dap');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ax-vscode-f5-'));
  const calls = path.join(dir, 'calls.jsonl');
  fs.writeFileSync(calls, '{"method":"count","input":{"text":"a b c"}}\n');
  const plugins = pluginDirs([path.join(plugin, 'ax-plugin.toml'), path.join(repoRoot, 'target', 'x', 'ax-plugin.toml')]);
  const r = resolveConfiguration({}, { plugins, activeFile: source, callsFiles: { [plugin]: calls } }, attributes);
  assert.equal(r.kind, 'ok', r.kind === 'error' ? r.message : r.kind);
  if (r.kind !== 'ok') return;
  assert.deepEqual(r.config, { type: 'ax', request: 'launch', name: 'Debug word-count', plugin, callsFile: calls });
  assert.equal(checkPaths(r.config, repoRoot, kind), undefined);

  const dc = new DebugClient(adapter, '--stdio', 'ax', { env: { ...process.env, AX_BIN: built('ax') } });
  dc.defaultTimeout = 60_000; // the adapter runs cargo build first (a no-op once built)
  await dc.start();
  try {
    await dc.hitBreakpoint(r.config, { path: source, line: probeLine });
    await Promise.all([
      dc.continueRequest({ threadId: 1 }),
      dc.assertOutput('stdout', '{"total":3,"words":3}'),
      dc.waitForEvent('terminated'),
    ]);
  } finally {
    await dc.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
