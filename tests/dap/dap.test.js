// ax-dap driven by Microsoft's DebugClient (@vscode/debugadapter-testsupport),
// the client VS Code's own debug adapters are tested with. Run by
// ./scripts/test after the workspace is built (it needs target/debug/ax-dap,
// target/debug/ax and the word-count library).
'use strict';

const assert = require('node:assert');
const { test, beforeEach, afterEach } = require('node:test');
const { count, lib, marker, startClient, wordCountSource: source } = require('./support');

const library = lib('word-count');
const probeLine = marker(source, '// #PROBE');
const launchArgs = (calls) => ({ plugin: library, build: false, calls });

let dc;

beforeEach(async () => {
  dc = await startClient();
});

afterEach(async () => {
  await dc.stop();
});

test('a line breakpoint stops on the probe line', async () => {
  await dc.hitBreakpoint(launchArgs([count('a b c')]), { path: source, line: probeLine });
});

test('a breakpoint on a line without a probe moves to the probe line', async () => {
  await dc.hitBreakpoint(
    launchArgs([count('a b c')]),
    { path: source, line: probeLine - 1 },
    { path: source, line: probeLine },
    { path: source, line: probeLine },
  );
});

test('a condition decides, and setVariable changes the result', async () => {
  await Promise.all([
    dc.waitForEvent('initialized').then(() =>
      dc.setBreakpointsRequest({ source: { path: source }, breakpoints: [{ line: probeLine, condition: 'words > 2' }] }),
    ).then(() => dc.configurationDoneRequest()),
    dc.launch(launchArgs([count('x y'), count('a b c')])),
    dc.assertStoppedLocation('breakpoint', { path: source, line: probeLine }),
  ]);
  const scopes = await dc.scopesRequest({ frameId: 0 });
  const locals = scopes.body.scopes[0].variablesReference;
  const vars = await dc.variablesRequest({ variablesReference: locals });
  const byName = Object.fromEntries(vars.body.variables.map((v) => [v.name, v.value]));
  assert.deepStrictEqual(byName, { text: '"a b c"', words: '3' }, 'only the call with three words stops');
  const evaluated = await dc.evaluateRequest({ expression: 'text.len() + words', context: 'hover' });
  assert.strictEqual(evaluated.body.result, '8');
  await dc.setVariableRequest({ variablesReference: locals, name: 'words', value: '7' });
  await Promise.all([
    dc.continueRequest({ threadId: 1 }),
    dc.assertOutput('stdout', '{"total":9,"words":7}'),
    dc.waitForEvent('terminated'),
  ]);
});

test('a logpoint writes without stopping', async () => {
  await Promise.all([
    dc.waitForEvent('initialized').then(() =>
      dc.setBreakpointsRequest({
        source: { path: source },
        breakpoints: [{ line: probeLine, logMessage: 'counted {words} words in {text}' }],
      }),
    ).then(() => dc.configurationDoneRequest()),
    dc.launch(launchArgs([count('one two')])),
    dc.assertOutput('console', 'counted 2 words in one two'),
    dc.waitForEvent('terminated'),
  ]);
});

test('an unsupported request is an error response, not a dead adapter', async () => {
  await assert.rejects(dc.customRequest('frobnicate'), /unsupported request `frobnicate`/);
  const threads = await dc.threadsRequest();
  assert.strictEqual(threads.body.threads[0].id, 1);
});
