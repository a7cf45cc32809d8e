// Data breakpoints and probe history through Microsoft's DebugClient, as VS
// Code's "Break on Value Change" and Variables pane use them: the capability,
// dataBreakpointInfo on a Locals variable, setDataBreakpoints, stops exactly
// when the value changes (reason "data breakpoint", old → new), the History
// scope, prev()/history() in evaluate, `.history` in the REPL, and `prev` in a
// logpoint. Run by ./scripts/test after the workspace is built.
'use strict';

const assert = require('node:assert');
const { test, beforeEach, afterEach } = require('node:test');
const { lib, marker, count, startClient, wordCountSource: source } = require('./support');

const wordCount = lib('word-count');
const probeLine = marker(source, '// #PROBE');

let dc;

beforeEach(async () => {
  dc = await startClient();
});

afterEach(async () => {
  await dc.stop();
});

/// Launches with `args` (after `initialize`, which `dc.launch` sends), sets
/// what `configure` sets once initialized, then configurationDone.
async function launch(args, configure = async () => {}, send = (a) => dc.launch(a)) {
  await Promise.all([
    dc.waitForEvent('initialized').then(configure).then(() => dc.configurationDoneRequest()),
    send({ build: false, ...args }),
  ]);
}

async function variablesOf(reference) {
  const response = await dc.variablesRequest({ variablesReference: reference });
  return response.body.variables;
}

test('a data breakpoint from the Variables pane stops exactly when the value changes', async () => {
  const init = await dc.initializeRequest({ adapterID: 'ax' });
  assert.strictEqual(init.body.supportsDataBreakpoints, true);
  // Words per call: 2, 2, 3, 3, 1 — changes at the third and the fifth call.
  const calls = ['a b', 'c d', 'e f g', 'h i j', 'k'].map(count);
  const first = dc.waitForEvent('stopped');
  await launch(
    { plugin: wordCount, calls },
    () => dc.setBreakpointsRequest({ source: { path: source }, breakpoints: [{ line: probeLine, hitCondition: '== 1' }] }),
    (args) => dc.launchRequest(args),
  );
  assert.strictEqual((await first).body.reason, 'breakpoint');
  const scopes = await dc.scopesRequest({ frameId: 0 });
  const locals = scopes.body.scopes.find((s) => s.name === 'Locals').variablesReference;
  const info = await dc.customRequest('dataBreakpointInfo', { variablesReference: locals, name: 'words' });
  assert.deepStrictEqual(info.body.accessTypes, ['write']);
  assert.match(info.body.description, /^words at /);
  const set = await dc.customRequest('setDataBreakpoints', {
    breakpoints: [{ dataId: info.body.dataId, accessType: 'write' }],
  });
  assert.strictEqual(set.body.breakpoints[0].verified, true);

  let stopped = dc.waitForEvent('stopped');
  await dc.continueRequest({ threadId: 1 });
  let event = await stopped;
  assert.strictEqual(event.body.reason, 'data breakpoint');
  assert.strictEqual(event.body.description, '`words` changed: 2 → 3');
  assert.deepStrictEqual(event.body.hitBreakpointIds, [set.body.breakpoints[0].id]);
  const variables = await variablesOf(locals);
  assert.strictEqual(variables.find((v) => v.name === 'text').value, '"e f g"');

  const history = (await dc.scopesRequest({ frameId: 0 })).body.scopes.find((s) => s.name === 'History');
  assert.ok(history, 'a History scope');
  const entries = await variablesOf(history.variablesReference);
  assert.deepStrictEqual(entries.map((e) => e.name), ['#2', '#1']);
  assert.match(entries[0].value, /text="c d", words=2$/);
  const prev = await dc.evaluateRequest({ expression: 'prev(text)', context: 'watch' });
  assert.strictEqual(prev.body.result, '"c d"');
  const all = await dc.evaluateRequest({ expression: 'history(words)', context: 'watch' });
  assert.ok(all.body.variablesReference > 0, 'history(words) expands');
  const items = await variablesOf(all.body.variablesReference);
  assert.deepStrictEqual(items.map((i) => i.value), ['2', '2']);
  const table = await dc.evaluateRequest({ expression: '.history', context: 'repl' });
  assert.match(table.body.result, /^#2 · .* before · text="c d", words=2\n#1 · /);

  stopped = dc.waitForEvent('stopped');
  await dc.continueRequest({ threadId: 1 });
  event = await stopped;
  assert.strictEqual(event.body.description, '`words` changed: 3 → 1', 'the fourth call (3 → 3) ran through');
  await Promise.all([dc.continueRequest({ threadId: 1 }), dc.waitForEvent('terminated')]);
});

test('a logpoint reads the previous hit with prev(); historySize 0 refuses it', async () => {
  const lines = [];
  dc.on('output', (e) => lines.push(e.body.output));
  // Listening from before the launch: nothing stops, so the end can come with configurationDone's response.
  const terminated = dc.waitForEvent('terminated');
  await launch({ plugin: wordCount, calls: ['a', 'b c', 'd e'].map(count) }, () =>
    dc.setBreakpointsRequest({
      source: { path: source },
      breakpoints: [{ line: probeLine, logMessage: '{prev(words)} -> {words}' }],
    }),
  );
  await terminated;
  assert.deepStrictEqual(lines.filter((l) => l.includes(' -> ')), ['null -> 1\n', '1 -> 2\n', '2 -> 2\n']);
  await dc.stop();

  dc = await startClient();
  let placed;
  await launch({ plugin: wordCount, calls: [], historySize: 0 }, async () => {
    placed = await dc.setBreakpointsRequest({
      source: { path: source },
      breakpoints: [{ line: probeLine, condition: 'words != prev(words)' }],
    });
  });
  assert.strictEqual(placed.body.breakpoints[0].verified, false);
  assert.match(placed.body.breakpoints[0].message, /historySize 0/);
});
