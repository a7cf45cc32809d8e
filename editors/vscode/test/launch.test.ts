//! The configuration provider's logic: F5 without launch.json, a launch
//! without `plugin`, several plugins, none, and the attribute checks, against
//! the schema `package.json` contributes.

import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { checkPaths, initialConfigurations, resolveConfiguration } from '../src/logic/launch';
import { attributes } from './support';

const ws = path.resolve('/ws');
const counter = path.join(ws, 'counter');
const greeter = path.join(ws, 'plugins', 'greeter');

test('F5 without launch.json launches the only plugin, keeping the host up for .call', () => {
  const r = resolveConfiguration({}, { plugins: [counter] }, attributes);
  assert.deepEqual(r, {
    kind: 'ok',
    config: { type: 'ax', request: 'launch', name: 'Debug counter', plugin: counter, keepRunning: true },
  });
});

test('F5 without launch.json may come as {type} or {noDebug}: the same filling, noDebug kept', () => {
  const typed = resolveConfiguration({ type: 'ax' }, { plugins: [counter] }, attributes);
  assert.equal(typed.kind === 'ok' && typed.config.plugin, counter);
  const noDebug = resolveConfiguration({ noDebug: true }, { plugins: [counter] }, attributes);
  assert.equal(noDebug.kind === 'ok' && noDebug.config.noDebug, true);
  assert.equal(noDebug.kind === 'ok' && noDebug.config.request, 'launch');
});

test('F5 without launch.json runs the calls file remembered for the plugin', () => {
  const callsFile = path.join(counter, 'calls.jsonl');
  const r = resolveConfiguration({}, { plugins: [counter], callsFiles: { [counter]: callsFile } }, attributes);
  assert.equal(r.kind, 'ok');
  assert.equal(r.kind === 'ok' && r.config.callsFile, callsFile);
  assert.equal(r.kind === 'ok' && r.config.keepRunning, undefined);
});

test('the plugin of the active file wins over a pick', () => {
  const r = resolveConfiguration({}, { plugins: [counter, greeter], activeFile: path.join(greeter, 'src', 'lib.rs') }, attributes);
  assert.equal(r.kind === 'ok' && r.config.plugin, greeter);
});

test('several plugins and no active one: the user picks, and the pick completes the configuration', () => {
  const r = resolveConfiguration({}, { plugins: [counter, greeter], activeFile: path.join(ws, 'README.md') }, attributes);
  assert.equal(r.kind, 'pick');
  if (r.kind !== 'pick') return;
  assert.deepEqual(r.candidates, [counter, greeter]);
  const completed = r.complete(greeter);
  assert.equal(completed.kind === 'ok' && completed.config.plugin, greeter);
  assert.equal(completed.kind === 'ok' && completed.config.request, 'launch');
  const bad = resolveConfiguration({ build: 'no' }, { plugins: [counter, greeter] }, attributes);
  const refused = bad.kind === 'pick' ? bad.complete(counter) : bad;
  assert.match(refused.kind === 'error' ? refused.message : '', /"build" is a string "no"; expected a boolean/);
});

test('a launch without plugin keeps its own attributes and gets the plugin filled', () => {
  const config = { type: 'ax', request: 'launch', name: 'mine', calls: [{ method: 'add', input: 2 }] };
  const r = resolveConfiguration(config, { plugins: [counter] }, attributes);
  assert.deepEqual(r.kind === 'ok' && r.config, { ...config, plugin: counter, keepRunning: true });
});

test('no plugin in the workspace is a message that says what is expected', () => {
  const r = resolveConfiguration({}, { plugins: [] }, attributes);
  assert.equal(r.kind, 'error');
  assert.match(r.kind === 'error' ? r.message : '', /no plugin in this workspace: expected a folder with an ax-plugin.toml.*set "plugin" in launch.json/);
});

test('a configuration with its plugin set is passed through, checked', () => {
  const config = { type: 'ax', request: 'launch', name: 'x', plugin: '${workspaceFolder}/x', build: false, env: { A: '1' } };
  assert.deepEqual(resolveConfiguration(config, { plugins: [] }, attributes), { kind: 'ok', config });
});

test('wrong attribute types are named with what was expected', () => {
  const r = resolveConfiguration(
    { type: 'ax', request: 'launch', name: 'bad', plugin: 3, build: 'yes', calls: [{ method: 'a' }, { input: 1 }], env: { A: 1 } },
    { plugins: [] },
    attributes,
  );
  assert.equal(r.kind, 'error');
  const message = r.kind === 'error' ? r.message : '';
  assert.match(message, /^ax: launch configuration "bad": /);
  assert.match(message, /"plugin" is an integer 3; expected a string \(The plugin: a crate directory/);
  assert.match(message, /"build" is a string "yes"; expected a boolean/);
  assert.match(message, /"calls\[1\]\.method" is missing/);
  assert.doesNotMatch(message, /calls\[0\]/);
  assert.match(message, /"env\.A" is an integer 1; expected a string/);
});

test('attach needs port and token, and a port must be a number', () => {
  const missing = resolveConfiguration({ type: 'ax', request: 'attach', name: 'a' }, { plugins: [counter] }, attributes);
  assert.match(missing.kind === 'error' ? missing.message : '', /"port" is missing.*"token" is missing/);
  const badPort = resolveConfiguration({ type: 'ax', request: 'attach', name: 'a', port: '4711', token: 't' }, { plugins: [] }, attributes);
  assert.match(badPort.kind === 'error' ? badPort.message : '', /"port" is a string "4711"; expected an integer/);
  const ok = resolveConfiguration({ type: 'ax', request: 'attach', name: 'a', port: 4711, token: 't' }, { plugins: [] }, attributes);
  assert.equal(ok.kind, 'ok');
});

test('an unknown request is refused, naming the two there are', () => {
  const r = resolveConfiguration({ type: 'ax', request: 'lanch', name: 'typo' }, { plugins: [counter] }, attributes);
  assert.equal(r.kind === 'error' && r.message, 'ax: debug configuration "typo": "request" is "lanch"; expected "launch" or "attach"');
});

test('paths are checked once variables are substituted, relative to the folder', () => {
  const kinds: Record<string, 'file' | 'dir'> = { [counter]: 'dir', [path.join(counter, 'calls.jsonl')]: 'file' };
  const exists = (p: string) => kinds[p];
  const good = { type: 'ax', request: 'launch', name: 'c', plugin: 'counter', callsFile: 'counter/calls.jsonl' };
  assert.equal(checkPaths(good, ws, exists), undefined);
  const bad = { type: 'ax', request: 'launch', name: 'c', plugin: 'nope', callsFile: 'counter', cwd: 'counter/calls.jsonl' };
  const message = checkPaths(bad, ws, exists) ?? '';
  assert.match(message, /"plugin" nope does not exist; expected a crate directory/);
  assert.match(message, /"callsFile" counter is not a file/);
  assert.match(message, /"cwd" counter\/calls.jsonl is not a directory/);
  assert.equal(checkPaths({ request: 'attach', port: 1, token: 't' }, ws, exists), undefined);
});

test('F5 from the repository root debugs the plugin of the open file, found upward on disk', () => {
  const wc = path.join(ws, 'examples', 'word-count');
  const r = resolveConfiguration({}, { plugins: [counter, greeter], activeFile: path.join(wc, 'src', 'lib.rs'), activePlugin: wc }, attributes);
  assert.deepEqual(r, { kind: 'ok', config: { type: 'ax', request: 'launch', name: 'Debug word-count', plugin: wc, keepRunning: true } });
});

test('create launch.json: one runnable configuration per plugin crate, relative to the folder, no placeholder', () => {
  const calls = path.join(counter, 'calls.jsonl');
  const other = path.resolve('/other/thing');
  const configs = initialConfigurations([counter, greeter, other], ws, { [counter]: calls });
  assert.deepEqual(configs, [
    { type: 'ax', request: 'launch', name: 'Debug counter', plugin: '${workspaceFolder}/counter', callsFile: '${workspaceFolder}/counter/calls.jsonl' },
    { type: 'ax', request: 'launch', name: 'Debug greeter', plugin: '${workspaceFolder}/plugins/greeter', keepRunning: true },
  ]);
  for (const config of configs) {
    assert.equal(resolveConfiguration(config, { plugins: [] }, attributes).kind, 'ok');
    assert.doesNotMatch(JSON.stringify(config), /METHOD/);
  }
  assert.deepEqual(initialConfigurations([ws], ws)[0].plugin, '${workspaceFolder}', 'the folder is itself the crate');
  assert.deepEqual(initialConfigurations([], ws), [], 'no plugin, no placeholder');
  const twins = initialConfigurations([path.join(ws, 'a', 'x'), path.join(ws, 'b', 'x')], ws).map((c) => c.name);
  assert.deepEqual(twins, ['Debug a/x', 'Debug b/x']);
});
