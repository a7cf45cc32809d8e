//! VS Code settings → the object ax-lsp takes (initializationOptions and
//! didChangeConfiguration), in the shape of the interfaces, with the same
//! defaults as package.json.

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { affectsServer, DEFAULTS, didChangeConfiguration, SERVER_KEYS, serverSettings } from '../src/logic/settings';
import { packageJson } from './support';

test('unset settings give the defaults of the interfaces', () => {
  assert.deepEqual(serverSettings(() => undefined), {
    inlayHints: { enabled: true, percentiles: ['p50', 'p95'], calls: true, share: 'profile' },
    hotSpots: 5,
  });
});

test('set values map onto the nested object, and only the server keys go', () => {
  const values: Record<string, unknown> = {
    'inlayHints.enabled': false,
    'inlayHints.percentiles': ['p50', 'p99', 'max'],
    'inlayHints.calls': false,
    'inlayHints.share': 'parent',
    hotSpots: 0,
    path: '/usr/bin/ax',
  };
  const settings = serverSettings((key) => values[key]);
  assert.deepEqual(settings, {
    inlayHints: { enabled: false, percentiles: ['p50', 'p99', 'max'], calls: false, share: 'parent' },
    hotSpots: 0,
  });
  assert.deepEqual(didChangeConfiguration(settings), { settings: { ax: settings } });
});

test('bad values go to the server as written, which warns and falls back', () => {
  const settings = serverSettings((key) => (key === 'hotSpots' ? -1 : key === 'inlayHints.share' ? 'caller' : undefined));
  assert.equal(settings.hotSpots, -1);
  assert.equal(settings.inlayHints.share, 'caller');
});

test('package.json declares every server setting with the same default', () => {
  const properties = packageJson.contributes.configuration.properties;
  for (const key of SERVER_KEYS) {
    const declared = properties[`ax.${key}`];
    assert.ok(declared, `package.json has no setting ax.${key}`);
    const expected = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], DEFAULTS);
    assert.deepEqual(declared.default, expected, `default of ax.${key}`);
  }
  assert.deepEqual(properties['ax.inlayHints.percentiles'].items?.enum, ['p50', 'p90', 'p95', 'p99', 'max']);
  assert.deepEqual(properties['ax.inlayHints.share'].enum, ['profile', 'parent', 'none']);
});

test('only changes of server settings are sent to the server', () => {
  assert.equal(affectsServer((s) => s === 'ax.inlayHints.share'), true);
  assert.equal(affectsServer((s) => s === 'ax.hotSpots'), true);
  assert.equal(affectsServer((s) => s === 'ax.path' || s === 'editor.fontSize'), false);
});
