// ax-dap's debugger features beyond breakpoints, driven by Microsoft's
// DebugClient: exception breakpoints (panic, budget, error) and exceptionInfo,
// function breakpoints, hit conditions, stepping, pause, stop on entry, the
// stack and its scopes, breakpointLocations, completions, the REPL's `.call`,
// restart, modules, attach to an `ax run --debug-listen` host, and the
// attribute schema editors read. Run by ./scripts/test after the workspace is
// built (target/debug holds ax-dap, ax, word-count and the fixtures).
'use strict';

const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { test, beforeEach, afterEach } = require('node:test');
const { root, bin, lib, marker, count, startClient, wordCountSource: source } = require('./support');

const wordCount = lib('word-count');
const probeLine = marker(source, '// #PROBE');
const panicSource = path.join(root, 'tests', 'fixtures', 'panic-call', 'src', 'lib.rs');
const panicLine = marker(panicSource, '// #PANIC_CALL');

let dc;

beforeEach(async () => {
  dc = await startClient();
});

afterEach(async () => {
  await dc.stop();
});

/// Launches with `args`, sets what `configure` sets once initialized, then configurationDone.
async function launch(args, configure = async () => {}) {
  await Promise.all([
    dc.waitForEvent('initialized').then(configure).then(() => dc.configurationDoneRequest()),
    dc.launch({ build: false, ...args }),
  ]);
}

const lineBreakpoint = (line, extra = {}) => () =>
  dc.setBreakpointsRequest({ source: { path: source }, breakpoints: [{ line, ...extra }] });

/// Resolves once the `category` output received from now on contains `needle`
/// (other lines may come before it, in any order).
function outputContaining(category, needle) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no ${category} output ${JSON.stringify(needle)}; got ${JSON.stringify(seen)}`)), 20000);
    const listen = (e) => {
      if (e.body.category !== category) return;
      seen += e.body.output;
      if (seen.includes(needle)) {
        clearTimeout(timer);
        dc.removeListener('output', listen);
        resolve(seen);
      }
    };
    dc.on('output', listen);
  });
}

async function variablesOf(reference) {
  const response = await dc.variablesRequest({ variablesReference: reference });
  return Object.fromEntries(response.body.variables.map((v) => [v.name, v.value]));
}

test('a panic stops where it happens, with the message in exceptionInfo', async () => {
  const stopped = dc.assertStoppedLocation('exception', { path: panicSource, line: panicLine });
  await launch({ plugin: lib('fixture-panic-call'), calls: [{ method: 'boom', input: 3 }] }, () =>
    dc.setExceptionBreakpointsRequest({ filters: ['panic'] }),
  );
  await stopped;
  const info = await dc.exceptionInfoRequest({ threadId: 1 });
  assert.strictEqual(info.body.exceptionId, 'panic');
  assert.match(info.body.description, /index out of bounds/);
  await Promise.all([
    dc.continueRequest({ threadId: 1 }),
    outputContaining('stderr', 'error: fixture_panic_call.boom: panicked'),
    dc.waitForEvent('terminated'),
  ]);
});

test('without the panic filter a panic does not stop', async () => {
  // Listening from before the launch: with nothing to stop at, the call's
  // output and the end can come in the same read as configurationDone's response.
  const ran = Promise.all([outputContaining('stderr', 'error: fixture_panic_call.boom: panicked'), dc.waitForEvent('terminated')]);
  await launch({ plugin: lib('fixture-panic-call'), calls: [{ method: 'boom', input: 3 }] }, () =>
    dc.setExceptionBreakpointsRequest({ filters: [] }),
  );
  await ran;
});

test('a budget violation stops the call before it is unwound', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ax-dap-budget-'));
  fs.writeFileSync(
    path.join(dir, 'ax-plugin.toml'),
    `[plugin]\nname = "hostile"\nversion = "0.1.0"\nlibrary = ${JSON.stringify(lib('fixture-hostile'))}\n\n[budget]\nmax_duration = "50ms"\n`,
  );
  const stopped = dc.waitForEvent('stopped');
  await launch({ plugin: path.join(dir, 'ax-plugin.toml'), calls: [{ method: 'spin_probe', input: {} }] }, () =>
    dc.setExceptionBreakpointsRequest({ filters: ['budget'] }),
  );
  assert.strictEqual((await stopped).body.reason, 'exception');
  const info = await dc.exceptionInfoRequest({ threadId: 1 });
  assert.strictEqual(info.body.exceptionId, 'budget');
  assert.match(info.body.description, /budget exceeded: max_duration 50(\.0)? ms exceeded \(observed /);
  await Promise.all([
    dc.continueRequest({ threadId: 1 }),
    outputContaining('stderr', 'error: hostile.spin_probe: budget exceeded'),
    dc.waitForEvent('terminated'),
  ]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an error returned stops with the error filter, and unknown filters are unverified', async () => {
  let filters;
  const stopped = dc.waitForEvent('stopped');
  await launch({ plugin: wordCount, calls: [{ method: 'no_such_method', input: null }] }, async () => {
    filters = await dc.setExceptionBreakpointsRequest({ filters: ['error', 'segfault'] });
  });
  assert.deepStrictEqual(filters.body.breakpoints.map((b) => b.verified), [true, false]);
  assert.match(filters.body.breakpoints[1].message, /expected panic, budget, error or sandbox/);
  assert.strictEqual((await stopped).body.reason, 'exception');
  const info = await dc.exceptionInfoRequest({ threadId: 1 });
  assert.strictEqual(info.body.exceptionId, 'error');
  assert.match(info.body.description, /no_such_method/);
  await Promise.all([dc.continueRequest({ threadId: 1 }), dc.waitForEvent('terminated')]);
});

test('a function breakpoint stops on entering the span', async () => {
  const stopped = dc.waitForEvent('stopped');
  await launch({ plugin: wordCount, calls: [count('a b')] }, () =>
    dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'count_words' }] }),
  );
  assert.strictEqual((await stopped).body.reason, 'function breakpoint');
  const trace = await dc.stackTraceRequest({ threadId: 1 });
  assert.strictEqual(trace.body.stackFrames[0].name, 'count_words');
  await Promise.all([dc.continueRequest({ threadId: 1 }), dc.waitForEvent('terminated')]);
});

test('a hit condition >= 3 stops from the third hit', async () => {
  const stopped = dc.assertStoppedLocation('breakpoint', { path: source, line: probeLine });
  await launch({ plugin: wordCount, calls: ['one', 'two', 'three', 'four'].map(count) }, lineBreakpoint(probeLine, { hitCondition: '>= 3' }));
  await stopped;
  assert.strictEqual((await variablesOf(1)).text, '"three"');
});

test('the stack has the probe, the spans and the host call; scopes hold the call', async () => {
  const stopped = dc.assertStoppedLocation('breakpoint', { path: source, line: probeLine });
  await launch({ plugin: wordCount, calls: [count('a b c')] }, lineBreakpoint(probeLine));
  await stopped;
  const trace = await dc.stackTraceRequest({ threadId: 1 });
  const names = trace.body.stackFrames.map((f) => f.name);
  assert.strictEqual(names[names.length - 1], 'ax: call `count`');
  assert.ok(names.includes('count'), names.join(', '));
  assert.strictEqual(trace.body.totalFrames, names.length);
  const page = await dc.stackTraceRequest({ threadId: 1, startFrame: 1, levels: 1 });
  assert.deepStrictEqual(page.body.stackFrames.map((f) => f.name), [names[1]]);

  const scopes = await dc.scopesRequest({ frameId: 0 });
  assert.deepStrictEqual(scopes.body.scopes.map((s) => s.name), ['Locals', 'Call']);
  const call = await variablesOf(scopes.body.scopes[1].variablesReference);
  assert.strictEqual(call.method, '"count"');
  const input = (await dc.variablesRequest({ variablesReference: scopes.body.scopes[1].variablesReference })).body
    .variables.find((v) => v.name === 'input');
  assert.ok(input.variablesReference > 0, 'the input expands');
  assert.deepStrictEqual(await variablesOf(input.variablesReference), { text: '"a b c"' });
});

test('the call\'s input and method evaluate in the REPL, hover and watch, after the probe\'s bindings', async () => {
  const stopped = dc.assertStoppedLocation('breakpoint', { path: source, line: probeLine });
  await launch({ plugin: wordCount, calls: [count('a b c')] }, lineBreakpoint(probeLine));
  await stopped;
  for (const context of ['repl', 'hover', 'watch']) {
    const text = await dc.evaluateRequest({ expression: 'input.text', context, frameId: 0 });
    assert.strictEqual(text.body.result, '"a b c"', context);
  }
  assert.strictEqual((await dc.evaluateRequest({ expression: 'method', context: 'repl' })).body.result, '"count"');
  const both = await dc.evaluateRequest({ expression: 'input.text.len() == text.len() + words - 3', context: 'repl' });
  assert.strictEqual(both.body.result, 'true');
  const whole = await dc.evaluateRequest({ expression: 'input', context: 'watch' });
  assert.ok(whole.body.variablesReference > 0, 'the input expands');
  await assert.rejects(dc.evaluateRequest({ expression: 'input.nope', context: 'repl' }), /nope/);
});

test('next stops at the next probe; stepOut runs to the end', async () => {
  const stopped = dc.assertStoppedLocation('breakpoint', { path: source, line: probeLine });
  await launch({ plugin: wordCount, calls: [count('a'), count('b c')] }, lineBreakpoint(probeLine));
  await stopped;
  await lineBreakpoint(probeLine, { condition: 'false' })();
  await Promise.all([dc.nextRequest({ threadId: 1 }), dc.assertStoppedLocation('step', { path: source, line: probeLine })]);
  assert.strictEqual((await variablesOf(1)).text, '"b c"');
  await Promise.all([dc.stepOutRequest({ threadId: 1 }), dc.waitForEvent('terminated')]);
});

test('pause stops a running call at its next probe', async () => {
  await launch({ plugin: lib('fixture-hostile'), calls: [{ method: 'spin_probe', input: {} }] });
  await new Promise((r) => setTimeout(r, 200));
  await Promise.all([dc.pauseRequest({ threadId: 1 }), dc.waitForEvent('stopped').then((e) => assert.strictEqual(e.body.reason, 'pause'))]);
  const vars = await variablesOf(1);
  assert.ok(Number(vars.i) > 0, JSON.stringify(vars));
});

test('stopOnEntry stops at the first probe', async () => {
  const stopped = dc.assertStoppedLocation('entry', { path: source, line: probeLine });
  await launch({ plugin: wordCount, calls: [count('a')], stopOnEntry: true });
  await stopped;
  await Promise.all([dc.continueRequest({ threadId: 1 }), dc.waitForEvent('terminated')]);
});

test('breakpointLocations lists the probe lines', async () => {
  await launch({ plugin: wordCount, calls: [], keepRunning: true });
  const all = await dc.customRequest('breakpointLocations', { source: { path: source }, line: 1, endLine: 10000 });
  assert.deepStrictEqual(all.body.breakpoints, [{ line: probeLine }]);
  const none = await dc.customRequest('breakpointLocations', { source: { path: source }, line: 1, endLine: probeLine - 1 });
  assert.deepStrictEqual(none.body.breakpoints, []);
});

test('the REPL completes, and `.call` calls the plugin while it keeps running', async () => {
  const modules = dc.waitForEvent('module');
  const loaded = dc.waitForEvent('loadedSource');
  await launch({ plugin: wordCount, calls: [], keepRunning: true });
  assert.strictEqual((await loaded).body.source.path, source, 'the probe file, resolved on disk');
  const sources = await dc.customRequest('loadedSources', {});
  assert.ok(sources.body.sources.some((s) => s.path === source), JSON.stringify(sources.body));
  // A bare library is named after its file.
  assert.strictEqual((await modules).body.module.name, 'word_count');
  assert.strictEqual((await dc.customRequest('modules', {})).body.modules[0].path, wordCount);
  const methods = await dc.customRequest('completions', { text: '.call c', column: 8 });
  assert.deepStrictEqual(methods.body.targets.map((t) => t.label), ['count']);
  const keyword = await dc.customRequest('completions', { text: '.ca', column: 4 });
  assert.deepStrictEqual(keyword.body.targets.map((t) => t.label), ['call']);
  await Promise.all([
    dc.evaluateRequest({ expression: '.call count {"text": "x y z"}', context: 'repl' }),
    outputContaining('console', 'count → {"total":3,"words":3}'),
  ]);
  await assert.rejects(dc.evaluateRequest({ expression: '.call count {oops', context: 'repl' }), /not JSON/);
});

test('completions offer the stopped probe\'s bindings', async () => {
  const stopped = dc.assertStoppedLocation('breakpoint', { path: source, line: probeLine });
  await launch({ plugin: wordCount, calls: [count('a')] }, lineBreakpoint(probeLine));
  await stopped;
  const targets = await dc.customRequest('completions', { text: 'wo', column: 3 });
  assert.deepStrictEqual(targets.body.targets.map((t) => t.label), ['words']);
});

test('restart relaunches with the same breakpoints, under the same ids', async () => {
  let set;
  const stopped = dc.waitForEvent('stopped');
  await launch({ plugin: wordCount, calls: [count('a b')] }, async () => {
    set = await lineBreakpoint(probeLine)();
  });
  const first = await stopped;
  const id = set.body.breakpoints[0].id;
  assert.deepStrictEqual(first.body.hitBreakpointIds, [id]);
  const changed = dc.waitForEvent('breakpoint');
  const again = dc.waitForEvent('stopped');
  await dc.customRequest('restart', {});
  assert.strictEqual((await changed).body.breakpoint.id, id);
  assert.deepStrictEqual((await again).body.hitBreakpointIds, [id]);
});

test('attach: a host started with --debug-listen waits, refuses a wrong token, then stops at a breakpoint', async () => {
  // 128 bits at least, and by environment: argv is visible to every local user.
  const token = '5ec7e70f5ec7e70f5ec7e70f5ec7e70f';
  const host = spawn(
    bin('ax'),
    ['run', wordCount, 'count', '{"text":"to be attached"}', '--no-build', '--debug-listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AX_DEBUG_TOKEN: token } },
  );
  let stdout = '';
  host.stdout.on('data', (d) => (stdout += d));
  const port = await new Promise((resolve, reject) => {
    let stderr = '';
    host.stderr.on('data', (d) => {
      stderr += d;
      const m = /attach to 127\.0\.0\.1:(\d+) with token (\w+)/.exec(stderr);
      if (m && m[2] === token) resolve(Number(m[1]));
    });
    host.on('exit', () => reject(new Error(`ax exited: ${stderr}`)));
  });
  try {
    await assert.rejects(dc.attachRequest({ port, token: 'wrong' }), /token/);
    await dc.stop();
    dc = await startClient();
    const stopped = dc.assertStoppedLocation('breakpoint', { path: source, line: probeLine });
    await Promise.all([
      dc.waitForEvent('initialized').then(lineBreakpoint(probeLine)).then(() => dc.configurationDoneRequest()),
      dc.attachRequest({ port, token }),
    ]);
    await stopped;
    assert.strictEqual((await variablesOf(1)).text, '"to be attached"');
    // As in a launch: the host's call is a frame and a scope, its input evaluates.
    const names = (await dc.stackTraceRequest({ threadId: 1 })).body.stackFrames.map((f) => f.name);
    assert.strictEqual(names[names.length - 1], 'ax: call `count`', names.join(', '));
    const scopes = (await dc.scopesRequest({ frameId: 0 })).body.scopes;
    assert.deepStrictEqual(scopes.map((s) => s.name), ['Locals', 'Call']);
    assert.strictEqual((await variablesOf(scopes[1].variablesReference)).method, '"count"');
    const text = await dc.evaluateRequest({ expression: 'input.text', context: 'repl' });
    assert.strictEqual(text.body.result, '"to be attached"');
    // The host exits 0, and the session says so.
    const exited = dc.waitForEvent('exited');
    await Promise.all([dc.continueRequest({ threadId: 1 }), dc.waitForEvent('terminated')]);
    assert.strictEqual((await exited).body.exitCode, 0);
    await new Promise((resolve) => (host.exitCode !== null ? resolve() : host.on('exit', resolve)));
    assert.strictEqual(host.exitCode, 0);
    assert.strictEqual(stdout.trim(), '{"total":3,"words":3}');
  } finally {
    host.kill();
  }
});

test('attach refuses a host that is not on loopback', async () => {
  await assert.rejects(dc.attachRequest({ host: '10.1.2.3', port: 9, token: 'x' }), /loopback/);
});

test('ax-dap --schema declares exactly the launch and attach attributes', () => {
  const schema = JSON.parse(execFileSync(bin('ax-dap'), ['--schema'], { encoding: 'utf8' }));
  assert.deepStrictEqual(schema.launch.required, ['plugin']);
  assert.deepStrictEqual(
    Object.keys(schema.launch.properties).sort(),
    ['build', 'calls', 'callsFile', 'cwd', 'env', 'historySize', 'hotReload', 'keepRunning', 'plugin', 'sourceMap', 'stopOnEntry'],
  );
  assert.deepStrictEqual(schema.attach.required, ['port', 'token']);
  assert.strictEqual(schema.launch.properties.build.default, true);
});

test('stepIn from a function breakpoint goes to the next probe; the REPL evaluates there', async () => {
  const entered = dc.waitForEvent('stopped');
  await launch({ plugin: wordCount, calls: [count('x y')] }, () =>
    dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'count' }] }),
  );
  assert.strictEqual((await entered).body.reason, 'function breakpoint');
  await dc.setFunctionBreakpointsRequest({ breakpoints: [] });
  await Promise.all([dc.stepInRequest({ threadId: 1 }), dc.assertStoppedLocation('step', { path: source, line: probeLine })]);
  const evaluated = await dc.evaluateRequest({ expression: 'words * 10 + text.len()', context: 'repl' });
  assert.strictEqual(evaluated.body.result, '23');
  await assert.rejects(dc.evaluateRequest({ expression: 'nope + 1', context: 'repl' }), /nope/);
  await Promise.all([dc.continueRequest({ threadId: 1 }), dc.waitForEvent('terminated')]);
});

test('a plugin that crashes its host ends the session with the signal', async () => {
  let stderr = '';
  dc.on('output', (e) => (stderr += e.body.category === 'stderr' ? e.body.output : ''));
  const terminated = dc.waitForEvent('terminated');
  await launch({ plugin: lib('fixture-hostile'), calls: [{ method: 'segfault', input: {} }] });
  await terminated;
  assert.match(stderr, /the plugin's host process ended: killed by SIGSEGV \(segmentation fault\)/);
  // The host's last words name where the plugin was: its innermost span.
  assert.match(stderr, /crashing with SIGSEGV \(segmentation fault\) in `about_to_crash` \(tests\/fixtures\/hostile\/src\/lib\.rs:\d+\)/);
  const threads = await dc.threadsRequest();
  assert.strictEqual(threads.body.threads.length, 1, 'the adapter still answers');
});

test('disconnecting while stopped leaves no process behind', async () => {
  const processEvent = dc.waitForEvent('process');
  const stopped = dc.waitForEvent('stopped');
  await launch({ plugin: wordCount, calls: [count('a')] }, lineBreakpoint(probeLine));
  const pid = (await processEvent).body.systemProcessId;
  await stopped;
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  assert.ok(alive(), 'the host runs while stopped');
  await dc.disconnectRequest({ terminateDebuggee: true });
  for (let i = 0; i < 200 && alive(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(!alive(), `process ${pid} is gone`);
  // ax-dap has exited after disconnect; afterEach has nothing left to stop.
  dc = await startClient();
});
