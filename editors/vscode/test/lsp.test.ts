//! The settings as the extension sends them, against the real `ax-lsp`:
//! `initializationOptions` and `workspace/didChangeConfiguration` built by
//! `logic/settings.ts` draw no warning, while a misspelt key does (so the
//! server did read them).

import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import * as rpc from 'vscode-jsonrpc/node';

import { DEFAULTS, didChangeConfiguration, serverSettings } from '../src/logic/settings';
import { built } from './support';

const WARNING = 2;

test('ax-lsp takes the extension’s settings without a warning, and warns about a misspelt key', async () => {
  const server = built('ax-lsp');

  const child = spawn(server, ['--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  const logs: { type: number; message: string }[] = [];
  let onLog = () => {};
  connection.onNotification('window/logMessage', (p: { type: number; message: string }) => {
    logs.push(p);
    onLog();
  });
  connection.onNotification('window/showMessage', (p: { type: number; message: string }) => logs.push(p));
  connection.onRequest(() => null);
  connection.listen();
  try {
    const values: Record<string, unknown> = {
      'inlayHints.enabled': false,
      'inlayHints.percentiles': ['p50', 'p90', 'p99', 'max'],
      'inlayHints.calls': false,
      'inlayHints.share': 'parent',
      hotSpots: 3,
    };
    const settings = serverSettings((key) => values[key]);
    assert.notDeepEqual(settings, DEFAULTS);
    await connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      workspaceFolders: null,
      capabilities: {},
      initializationOptions: settings,
    });
    await connection.sendNotification('initialized', {});
    await connection.sendNotification('workspace/didChangeConfiguration', didChangeConfiguration(serverSettings(() => undefined)));
    await connection.sendNotification('workspace/didChangeConfiguration', didChangeConfiguration(settings));

    const misspelt = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no warning about "inlayHint" within 10 s; log: ${JSON.stringify(logs)}; stderr: ${stderr}`)), 10_000);
      onLog = () => {
        if (logs.some((l) => l.message.includes('inlayHint"'))) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
    await connection.sendNotification('workspace/didChangeConfiguration', { settings: { ax: { ...settings, inlayHint: {} } } });
    await misspelt;
    // Give anything still in flight from the earlier messages time to arrive.
    await new Promise((r) => setTimeout(r, 300));
    const warnings = logs.filter((l) => l.type <= WARNING && /settings/i.test(l.message)).map((l) => l.message);
    assert.equal(warnings.length, 1, `expected only the misspelt key's warning, got:\n${warnings.join('\n')}`);
    assert.match(warnings[0], /inlayHint"/);

    await connection.sendRequest('shutdown');
    await connection.sendNotification('exit');
  } finally {
    connection.dispose();
    child.kill();
  }
});
