//! The performance report page: the HTML the real `ax perf report --html`
//! writes for a committed real profile, shown with a bar that opens it in the
//! browser; anything else refused with the file named.

import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

import { reportArgs } from '../src/logic/cli';
import { reportHtml } from '../src/logic/report';
import { built, repoRoot } from './support';

test('the report ax writes is shown as written, with a bar to open it in the browser', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ax-report-'));
  try {
    const profile = path.join(repoRoot, 'server/tests/fixtures/word-count-profile.json');
    const file = path.join(dir, 'report.html');
    execFileSync(built('ax'), reportArgs(profile, file), { stdio: 'pipe' });
    const written = fs.readFileSync(file, 'utf8');
    const html = reportHtml(written, '/ws/a&b/.ax/report.html');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"/);
    assert.match(html, /<body>\n<div style="[^"]*">\/ws\/a&amp;b\/\.ax\/report\.html · <a href="#" onclick="acquireVsCodeApi\(\)\.postMessage\(&quot;open&quot;\); return false">/);
    assert.equal(html.replace(/<div style="[^"]*">.*\n/, ''), written, 'nothing else changed');
    assert.match(html, /id="frames"/, 'the flame graph');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('anything but a report is refused, naming the file', () => {
  assert.throws(() => reportHtml('error: no profile', '/tmp/r.html'), /^Error: \/tmp\/r\.html: not an ax performance report \(it starts with "error: no profile"\); expected the output of ax perf report --html$/);
});

test('the command line', () => {
  assert.deepEqual(reportArgs('/p/.ax/profile.json', '/p/.ax/report.html'), ['perf', 'report', '/p/.ax/profile.json', '--html', '-o', '/p/.ax/report.html']);
});
