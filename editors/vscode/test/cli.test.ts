//! The `ax` command lines of the commands, checked as strings and then run
//! for real: the built `ax` profiles the built word-count library with
//! `profileArgs`, the profile lands where `profilePath` looks and reads as
//! "just now", `flamegraphArgs` draws it (and the webview page holds it), and `compareArgs` compares two
//! short benchmark runs into the Markdown the command shows.

import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

import { compareArgs, compareDocument, flamegraphArgs, parseCall, profileArgs, runArgs } from '../src/logic/cli';
import { flamegraphHtml } from '../src/logic/flamegraph';
import { profilePath, profileStatus } from '../src/logic/profile';
import { built } from './support';

test('command lines', () => {
  assert.deepEqual(runArgs('/p', { method: 'count', input: { text: 'a b' } }), ['run', '/p', 'count', '{"text":"a b"}']);
  assert.deepEqual(runArgs('/p', { method: 'reset', input: null }), ['run', '/p', 'reset', 'null']);
  assert.deepEqual(runArgs('/p', { callsFile: '/c.jsonl' }), ['run', '--calls', '/c.jsonl', '/p']);
  assert.deepEqual(profileArgs('/p', '/c.jsonl'), ['run', '--profile', '--calls', '/c.jsonl', '/p']);
  assert.deepEqual(compareArgs('a.json', 'b.json'), ['perf', 'compare', '--markdown', 'a.json', 'b.json']);
  assert.deepEqual(flamegraphArgs('/p/.ax/profile.json', '/tmp/f.svg'), ['perf', 'flamegraph', '/p/.ax/profile.json', '-o', '/tmp/f.svg']);
});

test('a typed call: method, then optional JSON input', () => {
  assert.deepEqual(parseCall('count {"text": "a b c"}'), { method: 'count', input: { text: 'a b c' } });
  assert.deepEqual(parseCall('  reset  '), { method: 'reset', input: null });
  assert.deepEqual(parseCall('add 2'), { method: 'add', input: 2 });
  assert.deepEqual(parseCall('echo\n[1,\n 2]'), { method: 'echo', input: [1, 2] });
  assert.match((parseCall('') as { error: string }).error, /expected a method name/);
  assert.match((parseCall('{"text": 1}') as { error: string }).error, /is not a method name; expected METHOD then its JSON input/);
  assert.match((parseCall('count {text: 1}') as { error: string }).error, /^the input of count is not JSON \(.*\): \{text: 1\}$/);
});

test('compare output: a slower verdict (exit 1) is shown as a result, a failure as one', () => {
  const table = '| benchmark |\n| :-- |\n| `count` |\n';
  const slower = compareDocument('a.json', 'b.json', { code: 1, stdout: table, stderr: 'error: 1 benchmark is slower\n' });
  assert.equal(slower.failed, false);
  assert.match(slower.markdown, /^# ax perf compare\n\nbase: `a.json`  \nnew: `b.json`\n\n\| benchmark \|/);
  assert.match(slower.markdown, /> error: 1 benchmark is slower/);
  // Exit 3: a verdict the runs could not back ("inconclusive"), still a table.
  const doubted = compareDocument('a.json', 'b.json', { code: 3, stdout: table, stderr: '' });
  assert.equal(doubted.failed, false);
  const failed = compareDocument('a.json', 'b.json', { code: 1, stdout: '', stderr: 'error: a.json: cannot read perf report\n' });
  assert.equal(failed.failed, true);
  assert.match(failed.markdown, /The comparison failed \(exit status 1\):\n\n```text\nerror: a.json: cannot read perf report\n```/);
});

function ax(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(built('ax'), args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the command lines run for real against ax and the word-count library', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ax-vscode-test-'));
  try {
    // A copy of the library: its profile goes beside it, not into the repository.
    const library = path.join(dir, path.basename(built('libword_count.so')));
    fs.copyFileSync(built('libword_count.so'), library);
    const calls = path.join(dir, 'calls.jsonl');
    fs.writeFileSync(calls, '{"method":"count","input":{"text":"a b c"}}\n{"method":"count","input":{"text":"d e"}}\n');

    const run = ax(runArgs(library, parseCall('count {"text": "x y z"}') as { method: string; input: unknown }));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), '{"total":3,"words":3}');

    const profiled = ax(profileArgs(library, calls));
    assert.equal(profiled.code, 0, profiled.stderr);
    const profile = profilePath(library, 'file');
    const status = profileStatus(library, { text: fs.readFileSync(profile, 'utf8'), mtimeMs: fs.statSync(profile).mtimeMs }, Date.now());
    assert.match(status.text, /profiled (just now|\d+ s ago)$/);
    assert.doesNotMatch(status.tooltip, /not readable/);

    const svg = path.join(dir, 'flame.svg');
    const drawn = ax(flamegraphArgs(profile, svg));
    assert.equal(drawn.code, 0, drawn.stderr);
    assert.match(fs.readFileSync(svg, 'utf8'), /<svg[\s\S]*count_words/);
    const page = flamegraphHtml(fs.readFileSync(svg, 'utf8'), profile, svg);
    assert.match(page, /<\/div>\n<svg [^>]*onload="init\(evt\)"[\s\S]*count_words[\s\S]*<\/svg>\n<\/body><\/html>$/);

    const bench = (out: string) =>
      ax(['perf', 'run', library, '--method', 'count', '--input', '{"text":"a b"}', '--iterations', '200', '--warmup', '10', '-o', out]);
    const [base, next] = [path.join(dir, 'base.json'), path.join(dir, 'new.json')];
    for (const out of [base, next]) assert.equal(bench(out).code, 0);
    const { markdown, failed } = compareDocument(base, next, ax(compareArgs(base, next)));
    assert.equal(failed, false, markdown);
    assert.match(markdown, /\| benchmark \| base median \| new median \|[\s\S]*\| `count` \|/);

    const missing = compareDocument(base, path.join(dir, 'nope.json'), ax(compareArgs(base, path.join(dir, 'nope.json'))));
    assert.equal(missing.failed, true);
    assert.match(missing.markdown, /nope\.json/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
