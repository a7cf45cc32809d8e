//! Plugin discovery: manifests to plugin directories, the plugin of a file,
//! labels, and the choice a command or F5 makes.

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { choosePlugin, nearestPlugin, pluginDirs, pluginLabel, pluginOfFile } from '../src/logic/plugins';

const ws = path.resolve('/ws');
const p = (...parts: string[]) => path.join(ws, ...parts);

test('plugin directories leave out build output and duplicates, sorted', () => {
  const dirs = pluginDirs([
    p('b', 'ax-plugin.toml'),
    p('a', 'ax-plugin.toml'),
    p('a', 'ax-plugin.toml'),
    p('target', 'package', 'x', 'ax-plugin.toml'),
    p('node_modules', 'y', 'ax-plugin.toml'),
    p('c', 'Cargo.toml'),
  ]);
  assert.deepEqual(dirs, [p('a'), p('b')]);
});

test('a file belongs to the innermost plugin containing it, and not to a sibling with a common prefix', () => {
  const dirs = [p('outer'), p('outer', 'inner'), p('out')];
  assert.equal(pluginOfFile(p('outer', 'inner', 'src', 'lib.rs'), dirs), p('outer', 'inner'));
  assert.equal(pluginOfFile(p('outer', 'src', 'lib.rs'), dirs), p('outer'));
  assert.equal(pluginOfFile(p('outside', 'lib.rs'), dirs), undefined);
  assert.equal(pluginOfFile(undefined, dirs), undefined);
});

test('labels are relative to their workspace folder', () => {
  assert.equal(pluginLabel(p('examples', 'word-count'), [ws]), path.join('examples', 'word-count'));
  assert.equal(pluginLabel(ws, [ws]), 'ws');
  assert.equal(pluginLabel('/elsewhere/x', [ws]), '/elsewhere/x');
});

test('the choice: the active file’s plugin, else the only one, else a pick, else none', () => {
  assert.deepEqual(choosePlugin([p('a'), p('b')], p('b', 'src', 'lib.rs')), { kind: 'plugin', dir: p('b') });
  assert.deepEqual(choosePlugin([p('a')], undefined), { kind: 'plugin', dir: p('a') });
  assert.deepEqual(choosePlugin([p('a'), p('b')], undefined), { kind: 'pick', candidates: [p('a'), p('b')] });
  assert.deepEqual(choosePlugin([], p('x.rs')), { kind: 'none' });
});

test('the plugin of a file on disk: the nearest ax-plugin.toml upward, build output left out', () => {
  const manifests = new Set([p('examples', 'wc', 'ax-plugin.toml'), p('ax-plugin.toml'), p('target', 'x', 'ax-plugin.toml')]);
  const isFile = (f: string) => manifests.has(f);
  assert.equal(nearestPlugin(p('examples', 'wc', 'src', 'deep', 'lib.rs'), isFile), p('examples', 'wc'));
  assert.equal(nearestPlugin(p('README.md'), isFile), ws);
  assert.equal(nearestPlugin(p('target', 'x', 'src', 'lib.rs'), isFile), ws);
  assert.equal(nearestPlugin(path.resolve('/elsewhere/lib.rs'), isFile), undefined);
  assert.equal(nearestPlugin(undefined, isFile), undefined);
});

test('the plugin found on disk wins, even one the workspace search did not list', () => {
  const listed = [p('a'), p('b')];
  assert.deepEqual(choosePlugin(listed, p('tests', 'c', 'src', 'lib.rs'), p('tests', 'c')), { kind: 'plugin', dir: p('tests', 'c') });
});
