//! Finding ax, ax-dap and ax-lsp: setting, workspace build, PATH, cargo's bin
//! directory, and the message when there is none; plus one lookup on the real
//! file system, finding the ax-dap cargo built.

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { findBinary, Lookup } from '../src/logic/binaries';
import { built, repoRoot } from './support';

const home = path.resolve('/home/me');
const ws = path.resolve('/ws');

function lookup(files: string[], overrides: Partial<Lookup> = {}): Lookup {
  const set = new Set(files);
  return { workspaceFolders: [ws], env: { PATH: '/usr/local/bin:/usr/bin' }, isFile: (p) => set.has(p), platform: 'linux', home, ...overrides };
}

test('the setting wins, with ~ and ${workspaceFolder} expanded and relative paths taken from the folder', () => {
  const everywhere = ['/usr/bin/ax-dap', path.join(ws, 'target', 'debug', 'ax-dap')];
  assert.deepEqual(findBinary('ax-dap', lookup([...everywhere, '/opt/ax-dap'], { setting: '/opt/ax-dap' })), { path: '/opt/ax-dap', from: 'setting' });
  assert.deepEqual(findBinary('ax-dap', lookup([path.join(home, 'bin', 'ax-dap')], { setting: '~/bin/ax-dap' })), {
    path: path.join(home, 'bin', 'ax-dap'),
    from: 'setting',
  });
  const inWs = path.join(ws, 'tools', 'ax-dap');
  assert.deepEqual(findBinary('ax-dap', lookup([inWs], { setting: '${workspaceFolder}/tools/ax-dap' })), { path: inWs, from: 'setting' });
  assert.deepEqual(findBinary('ax-dap', lookup([inWs], { setting: 'tools/ax-dap' })), { path: inWs, from: 'setting' });
});

test('a setting that names no file is an error, not a silent fallback', () => {
  const found = findBinary('ax-lsp', lookup(['/usr/bin/ax-lsp'], { setting: '/nope/ax-lsp' }));
  assert.deepEqual(found, {
    error: 'ax: ax.lsp.path is "/nope/ax-lsp", which is not a file; expected the path of the ax-lsp binary (or leave the setting empty to look it up)',
  });
});

test('without a setting: the workspace build (debug, then release), then PATH, then cargo', () => {
  const debug = path.join(ws, 'target', 'debug', 'ax');
  const release = path.join(ws, 'target', 'release', 'ax');
  const cargo = path.join(home, '.cargo', 'bin', 'ax');
  assert.equal((findBinary('ax', lookup([debug, release, '/usr/bin/ax', cargo])) as { path: string }).path, debug);
  assert.equal((findBinary('ax', lookup([release, '/usr/bin/ax', cargo])) as { path: string }).path, release);
  assert.deepEqual(findBinary('ax', lookup(['/usr/bin/ax', cargo])), { path: '/usr/bin/ax', from: 'PATH' });
  assert.deepEqual(findBinary('ax', lookup([cargo])), { path: cargo, from: 'cargo' });
  assert.deepEqual(findBinary('ax', lookup(['/cargo-home/bin/ax'], { env: { CARGO_HOME: '/cargo-home' } })), {
    path: '/cargo-home/bin/ax',
    from: 'cargo',
  });
  const custom = path.join('/build', 'debug', 'ax');
  assert.equal((findBinary('ax', lookup([custom, debug], { env: { CARGO_TARGET_DIR: '/build' } })) as { path: string }).path, custom);
});

test('none found: the message says how to install or build it, and which setting to set', () => {
  const found = findBinary('ax-dap', lookup([]));
  assert.ok('error' in found);
  assert.match(found.error, /^ax: cannot find ax-dap: not in the workspace's target\/debug or target\/release, on PATH, or in /);
  assert.match(found.error, /`cargo install --path adapter`/);
  assert.match(found.error, /`cargo build -p ax-dap`/);
  assert.match(found.error, /set ax\.dap\.path/);
  assert.match((findBinary('ax-lsp', lookup([])) as { error: string }).error, /cargo install --path server/);
  assert.match((findBinary('ax', lookup([])) as { error: string }).error, /cargo install --path runtime\/cli/);
});

test('on the real file system, the ax-dap cargo built is found from the repository as workspace', () => {
  const adapter = built('ax-dap');
  const target = path.dirname(path.dirname(adapter));
  const found = findBinary('ax-dap', {
    workspaceFolders: [repoRoot],
    env: { CARGO_TARGET_DIR: target, PATH: '' },
    isFile: (p) => fs.existsSync(p) && fs.statSync(p).isFile(),
  });
  assert.deepEqual(found, { path: adapter, from: 'workspace' });
});

test('every scope VS Code applies is tried, narrowest first; a wrong one is noted, not silently skipped', () => {
  const settings = [
    { scope: 'Workspace settings', value: '/gone/ax-dap' },
    { scope: 'User settings', value: '/opt/ax-dap' },
  ];
  assert.deepEqual(findBinary('ax-dap', lookup(['/opt/ax-dap'], { settings })), {
    path: '/opt/ax-dap',
    from: 'setting',
    note: 'ax: ax.dap.path is "/gone/ax-dap" in Workspace settings, which is not a file; using "/opt/ax-dap" from User settings.',
  });
  assert.deepEqual(findBinary('ax-dap', lookup(['/opt/ax-dap'], { settings: [...settings].reverse() })), { path: '/opt/ax-dap', from: 'setting' });
  const none = findBinary('ax-dap', lookup(['/usr/bin/ax-dap'], { settings: settings.slice(0, 1) }));
  assert.deepEqual(none, {
    error: 'ax: ax.dap.path is "/gone/ax-dap" in Workspace settings, which is not a file; expected the path of the ax-dap binary (or leave the setting empty to look it up)',
  });
});

test('remote window: a User settings path VS Code ignores is named, with the scope to use instead', () => {
  const ignored = { scope: 'User settings (/data/User/settings.json)', value: '/opt/ax/ax-lsp' };
  const used = findBinary('ax-lsp', lookup(['/opt/ax/ax-lsp'], { ignored, remote: 'ssh-remote' }));
  assert.ok('path' in used && used.path === '/opt/ax/ax-lsp' && used.from === 'setting');
  assert.equal(
    'note' in used && used.note,
    'ax: ax.lsp.path is "/opt/ax/ax-lsp" in User settings (/data/User/settings.json), but ax.lsp.path is machine-overridable, ' +
      'so VS Code does not apply its User settings (/data/User/settings.json) value in a remote window; ' +
      'set it in Remote settings ("Preferences: Open Remote Settings") instead. Using it for now, since /opt/ax/ax-lsp is a file here.',
  );
  const fallback = findBinary('ax-lsp', lookup(['/usr/bin/ax-lsp'], { ignored, remote: 'ssh-remote' }));
  assert.ok('path' in fallback && fallback.path === '/usr/bin/ax-lsp' && fallback.from === 'PATH');
  assert.match(('note' in fallback && fallback.note) || '', /It is not a file here; using \/usr\/bin\/ax-lsp \(PATH\)\.$/);
  const missing = findBinary('ax-lsp', lookup([], { ignored, remote: 'ssh-remote' }));
  assert.ok('error' in missing);
  assert.match(missing.error, /^ax: ax\.lsp\.path is "\/opt\/ax\/ax-lsp" in User settings .*set it in Remote settings .*\(It is not a file here either\.\) ax: cannot find ax-lsp/);
  // A value VS Code does apply (Remote settings) wins over the ignored one.
  const remote = findBinary('ax-lsp', lookup(['/opt/ax/ax-lsp', '/srv/ax-lsp'], { ignored, remote: 'wsl', settings: [{ scope: 'Remote settings', value: '/srv/ax-lsp' }] }));
  assert.deepEqual(remote, { path: '/srv/ax-lsp', from: 'setting' });
});

test('remote window, nothing found and no User settings file in reach: the message still says which scope applies', () => {
  const found = findBinary('ax-dap', lookup([], { remote: 'dev-container' }));
  assert.ok('error' in found);
  assert.match(found.error, /This is a remote window \(dev-container\): ax\.dap\.path is machine-overridable, so VS Code does not apply its User settings value in a remote window; set it in Remote settings \("Preferences: Open Remote Settings"\) or the workspace settings\.$/);
  assert.doesNotMatch((findBinary('ax-dap', lookup([])) as { error: string }).error, /remote/);
});
