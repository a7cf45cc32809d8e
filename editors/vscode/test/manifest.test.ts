//! package.json against the rest: the debugger attributes against the schema
//! ax-dap accepts (the committed copy exactly, and the real `ax-dap --schema`
//! on names, types, required and defaults), the commands against those the
//! extension registers, snippets and initial configurations against the
//! attributes, and activation events kept narrow.

import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { COMMANDS } from '../src/logic/commands';
import { resolveConfiguration } from '../src/logic/launch';
import { Attributes, differences, project } from '../src/logic/schema';
import { attributes, built, committedSchema, extensionRoot, packageJson } from './support';

test('configurationAttributes are the committed schema of ax-dap, word for word', () => {
  assert.deepEqual(attributes, committedSchema);
});

test('configurationAttributes agree with `ax-dap --schema` on names, types, required and defaults', () => {
  const adapter = built('ax-dap');
  const r = spawnSync(adapter, ['--schema'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `${adapter} --schema failed: ${r.stderr}`);
  let printed: Attributes;
  try {
    printed = JSON.parse(r.stdout);
  } catch (e) {
    assert.fail(`${adapter} --schema printed no JSON (${(e as Error).message}): ${r.stdout.slice(0, 200)}`);
  }
  const drift = differences(project(attributes), project(printed));
  assert.deepEqual(drift, [], `package.json (left) and ax-dap --schema (right) differ:\n${drift.join('\n')}`);
});

test('the projection sees a changed type, default or required list', () => {
  const changed: Attributes = JSON.parse(JSON.stringify(committedSchema));
  changed.launch.properties.build.default = false;
  changed.attach.required = ['port'];
  changed.launch.properties.env.additionalProperties = { type: 'number' };
  delete changed.launch.properties.hotReload;
  assert.deepEqual(differences(project(committedSchema), project(changed)), [
    'attach.required: ["port","token"] ≠ ["port"]',
    'launch.properties.build.default: true ≠ false',
    'launch.properties.env.additionalProperties.type: "string" ≠ "number"',
    'launch.properties.hotReload: {"type":"boolean","default":false,"required":[],"items":null,"properties":null,"additionalProperties":null} ≠ absent',
  ]);
});

test('every snippet is a valid configuration', () => {
  const debuggerContribution = packageJson.contributes.debuggers[0];
  for (const snippet of debuggerContribution.configurationSnippets) {
    // Snippet placeholders stand for values the user types: fill them as a user would.
    const body = JSON.parse(
      JSON.stringify(snippet.body).replace(/"\^\\"([^"]*)\\""/g, '"$1"').replace(/"\^\$\{\d+:PORT\}"/g, '4711'),
    ) as Record<string, unknown>;
    const r = resolveConfiguration(body, { plugins: [] }, attributes);
    assert.equal(r.kind, 'ok', `snippet "${snippet.label}": ${r.kind === 'error' ? r.message : r.kind}`);
  }
});

test('no static initialConfigurations: VS Code would write them into a new launch.json before the provider\'s, placeholders and all', () => {
  assert.equal(packageJson.contributes.debuggers[0].initialConfigurations, undefined);
});

test('the contributed commands are the registered ones, each with an activation event', () => {
  assert.deepEqual(packageJson.contributes.commands.map((c) => c.command).sort(), [...COMMANDS].sort());
  for (const command of COMMANDS) assert.ok(packageJson.activationEvents.includes(`onCommand:${command}`), command);
});

test('activation stays narrow: no "*", no startup, no activation on every Rust file', () => {
  for (const event of packageJson.activationEvents) {
    assert.match(event, /^(onDebugResolve:ax|onDebugDynamicConfigurations:ax|onDebugInitialConfigurations|workspaceContains:\*\*\/ax-plugin\.toml|onCommand:ax\.\w+)$/);
  }
});

test('untrusted and virtual workspaces are refused: the extension runs binaries found in the workspace', () => {
  const capabilities = (packageJson as unknown as { capabilities: Record<string, { supported: unknown }> }).capabilities;
  assert.equal(capabilities.untrustedWorkspaces.supported, false);
  assert.equal(capabilities.virtualWorkspaces.supported, false);
});

test('the bundle exists and needs nothing at run time but vscode and node', () => {
  const bundle = path.join(extensionRoot, packageJson.main);
  assert.ok(fs.existsSync(bundle), `${bundle} is missing; run npm run bundle`);
  const text = fs.readFileSync(bundle, 'utf8');
  const required = new Set([...text.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]));
  const builtins = new Set(require('node:module').builtinModules as string[]);
  const foreign = [...required].filter((m) => m !== 'vscode' && !builtins.has(m.replace(/^node:/, '')));
  assert.deepEqual(foreign, [], 'modules the .vsix (packaged with --no-dependencies) would lack');
  assert.ok(required.has('vscode'));
});
