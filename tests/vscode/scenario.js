//! The ax extension inside a real VS Code: code-server (VS Code 1.99 served to
//! a browser, a remote window as far as the extension is concerned) in
//! Debian's headless Chromium, driven by playwright-core through the keyboard
//! as a user would. The repository root is the workspace; the .vsix that
//! `scripts/test` packages is installed; the `ax.*path` settings are set in
//! User settings only, to wrappers that record each start of ax-dap and
//! ax-lsp and the DAP traffic (the trace the steps are judged by, with what
//! is on screen). Steps: open word-count's lib.rs, F9 on the probe line, F5
//! with no launch.json, `.call` in the Debug Console, paused on the line,
//! Variables, a Debug Console evaluation, a conditional breakpoint that stops
//! only when true, a profile written → inlay hints and lenses, ax-lsp killed →
//! restarted, "create a launch.json" → one configuration per plugin crate.
//! Prints TAP (`# pass N` / `# fail N`), the figures, and a screenshot per
//! step under target/vscode-test/; a failure names its step and screenshot.

'use strict';

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const here = __dirname;
const repo = path.resolve(here, '..', '..');
const target = process.env.CARGO_TARGET_DIR ? path.resolve(repo, process.env.CARGO_TARGET_DIR) : path.join(repo, 'target');
const bin = (name) => path.join(target, 'debug', name);
const artefacts = path.join(target, 'vscode-test');
const plugin = path.join(repo, 'examples', 'word-count');
const libRs = path.join(plugin, 'src', 'lib.rs');
const profileJson = path.join(plugin, '.ax', 'profile.json');
const codeServer = path.join(here, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const vsix = path.join(repo, 'editors', 'vscode', 'dist', 'ax-vscode.vsix');

const results = [];
const figures = [];
let page;
let step = 0;

async function check(name, body) {
  step += 1;
  const shot = path.join(artefacts, `${String(step).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
  try {
    await body();
    if (page) await page.screenshot({ path: shot }).catch(() => {});
    results.push({ name, ok: true });
    console.log(`ok ${results.length} - ${name}`);
  } catch (e) {
    if (page) await page.screenshot({ path: shot }).catch(() => {});
    results.push({ name, ok: false });
    console.log(`not ok ${results.length} - ${name}`);
    console.log(`  ---\n  step: ${name}\n  screenshot: ${shot}\n  error: ${JSON.stringify(String(e && e.message ? e.message : e).slice(0, 2000))}\n  ...`);
    throw new StepFailed();
  }
}

class StepFailed extends Error {}

async function until(what, probe, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

const QUICK_INPUT = '.quick-input-widget .quick-input-box input.input';

/** Waits until the keyboard focus is inside `selector`: keystrokes must never land in an editor by mistake. */
async function focusIn(selector, timeout = 10000) {
  await page.waitForFunction((s) => document.activeElement !== null && document.activeElement.closest(s) !== null, selector, { timeout });
}
const text = (selector) => page.evaluate((s) => [...document.querySelectorAll(s)].map((e) => e.textContent).join('\n'), selector);

/** The DAP messages ax-dap sent so far (its stdout, recorded by the wrapper). */
function dapOut(tmp) {
  const raw = fs.existsSync(path.join(tmp, 'dap.out')) ? fs.readFileSync(path.join(tmp, 'dap.out'), 'utf8') : '';
  return raw.split(/Content-Length: \d+\r\n\r\n/).filter((s) => s.trim() !== '').map((s) => {
    try {
      return JSON.parse(s);
    } catch {
      return {};
    }
  });
}

async function command(title) {
  // Retried: a widget closing at that moment (the breakpoint widget) can take the palette's focus away.
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('F1');
    try {
      await focusIn('.quick-input-box', 3000);
    } catch (e) {
      if (attempt === 3) throw e;
      continue;
    }
    await page.keyboard.type(title);
    try {
      await until(`"${title}" in the command palette`, async () => (await text('.quick-input-list .monaco-list-row.focused')).includes(title), 5000);
      if ((await page.inputValue(QUICK_INPUT)).includes(title)) break;
    } catch (e) {
      if (attempt === 3) throw e;
    }
    await page.keyboard.press('Escape');
  }
  await page.keyboard.press('Enter');
}

async function openFile(relative) {
  await page.keyboard.press('Control+P');
  await focusIn('.quick-input-box');
  await page.keyboard.type(relative);
  await until(`${relative} in quick open`, async () => (await text('.quick-input-list .monaco-list-row.focused')).includes(path.basename(relative)), 15000);
  await page.keyboard.press('Enter');
  await until(`${relative} open`, async () => (await text('.tab.active')).includes(path.basename(relative)), 10000);
}

async function goToLine(line) {
  await page.keyboard.press('Control+G');
  await focusIn('.quick-input-box');
  await page.keyboard.type(String(line));
  await page.keyboard.press('Enter');
  await until(`cursor on line ${line}`, async () => (await text('.part.statusbar')).includes(`Ln ${line},`), 5000);
}

async function consoleInput(line) {
  // Ctrl+Shift+Y toggles the panel; the command only focuses it.
  if (await page.isVisible('.repl-input-wrapper')) await page.click('.repl-input-wrapper');
  else await command('Focus on Debug Console View');
  await focusIn('.repl-input-wrapper');
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

async function main() {
  fs.mkdirSync(artefacts, { recursive: true });
  for (const f of fs.readdirSync(artefacts)) if (f.endsWith('.png')) fs.rmSync(path.join(artefacts, f));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ax-vscode-test-'));
  const userData = path.join(tmp, 'user-data');
  const extensions = path.join(tmp, 'extensions');
  const wrappers = path.join(tmp, 'bin');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.mkdirSync(wrappers);
  // Wrappers outside the workspace, so only the settings can lead to them.
  // ax-dap's wrapper records the DAP traffic and exits with the adapter, as VS Code expects of it.
  fs.writeFileSync(
    path.join(wrappers, 'ax-dap'),
    `#!${process.execPath}
const fs = require('node:fs');
fs.appendFileSync(${JSON.stringify(path.join(tmp, 'ax-dap.starts'))}, process.pid + '\\n');
const child = require('node:child_process').spawn(${JSON.stringify(bin('ax-dap'))}, process.argv.slice(2), { stdio: ['pipe', 'pipe', 'inherit'] });
const input = fs.createWriteStream(${JSON.stringify(path.join(tmp, 'dap.in'))}, { flags: 'a' });
const output = fs.createWriteStream(${JSON.stringify(path.join(tmp, 'dap.out'))}, { flags: 'a' });
process.stdin.on('data', (d) => { input.write(d); child.stdin.write(d); });
child.stdout.on('data', (d) => { output.write(d); process.stdout.write(d); });
child.on('exit', (code, signal) => {
  fs.appendFileSync(${JSON.stringify(path.join(tmp, 'ax-dap.exits'))}, Date.now() + ' ' + code + ' ' + signal + '\\n');
  output.end(() => process.exit(code ?? 1));
});
`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(wrappers, 'ax-lsp'), `#!/bin/sh\necho $$ >> '${tmp}/ax-lsp.starts'\nexec '${bin('ax-lsp')}' "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify(
      {
        // The workspace runs binaries: trusted, as the extension requires.
        'security.workspace.trust.enabled': false,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'telemetry.telemetryLevel': 'off',
        'editor.inlayHints.enabled': 'on',
        // VS Code cuts hints at 43 characters by default: read them whole.
        'editor.inlayHints.maximumLength': 0,
        // Keystrokes that go astray must never reach the repository's files.
        'files.autoSave': 'off',
        'files.hotExit': 'off',
        'debug.saveBeforeStart': 'none',
        // machine-overridable: set in User settings only, as in the issue.
        'ax.path': bin('ax'),
        'ax.dap.path': path.join(wrappers, 'ax-dap'),
        'ax.lsp.path': path.join(wrappers, 'ax-lsp'),
      },
      null,
      2,
    ),
  );
  const vscodeDir = path.join(repo, '.vscode');
  const hadVscodeDir = fs.existsSync(vscodeDir);
  if (fs.existsSync(path.join(vscodeDir, 'launch.json'))) throw new Error(`${vscodeDir}/launch.json exists; the test needs a repository without one`);
  fs.rmSync(profileJson, { force: true });
  const guarded = execFileSync('git', ['ls-files', 'examples'], { cwd: repo, encoding: 'utf8' }).trim().split('\n').map((f) => path.join(repo, f));
  const original = new Map(guarded.map((f) => [f, fs.readFileSync(f)]));
  const probeLine = fs.readFileSync(libRs, 'utf8').split('\n').findIndex((l) => l.includes('// #PROBE')) + 1;

  const csArgs = ['--user-data-dir', userData, '--extensions-dir', extensions];
  execFileSync(process.execPath, [codeServer, ...csArgs, '--install-extension', vsix], { stdio: 'pipe' });
  const port = await freePort();
  const server = spawn(
    process.execPath,
    [codeServer, ...csArgs, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', repo],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let serverLog = '';
  server.stdout.on('data', (d) => (serverLog += d));
  server.stderr.on('data', (d) => (serverLog += d));
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  const outputLog = () => {
    const found = [];
    const walk = (d) => {
      for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
        if (e.isDirectory()) walk(path.join(d, e.name));
        else if (/-ax\.log$/.test(e.name)) found.push(fs.readFileSync(path.join(d, e.name), 'utf8'));
      }
    };
    walk(path.join(userData, 'logs'));
    return found.join('\n');
  };
  const starts = (name) => {
    const f = path.join(tmp, `${name}.starts`);
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').filter(Boolean) : [];
  };
  try {
    page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
    await check('code-server serves VS Code with the repository root as workspace', async () => {
      await until('code-server listening', async () => serverLog.includes('HTTP server listening'), 30000);
      await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(repo)}`);
      await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 60000 });
    });

    await check('open examples/word-count/src/lib.rs, ax-lsp starts from the User-settings path', async () => {
      await openFile('examples/word-count/src/lib.rs');
      await until('ax-lsp started through ax.lsp.path', async () => starts('ax-lsp').length > 0, 30000);
    });

    await check(`F9 on the probe line (${probeLine})`, async () => {
      await page.click('.monaco-editor .view-lines');
      await goToLine(probeLine);
      await page.keyboard.press('F9');
      await page.waitForSelector('.monaco-editor .glyph-margin-widgets .codicon-debug-breakpoint, .monaco-editor .codicon-debug-breakpoint-unverified', { timeout: 5000 });
    });

    let f5;
    await check('F5 with no launch.json starts ax-dap (from the User-settings path) on word-count', async () => {
      f5 = Date.now();
      await page.keyboard.press('F5');
      await until('ax-dap started through ax.dap.path', async () => starts('ax-dap').length > 0, 20000);
      await until('the launch answered', async () => dapOut(tmp).find((m) => m.command === 'launch'), 120000);
      figures.push(`F5 → launched (ax-dap started, cargo found the plugin up to date, host loaded): ${Date.now() - f5} ms`);
      const launch = dapOut(tmp).find((m) => m.command === 'launch');
      if (!launch.success) throw new Error(`launch failed: ${launch.message}`);
      const request = fs.readFileSync(path.join(tmp, 'dap.in'), 'utf8');
      if (!request.includes(`"plugin":"${plugin}"`)) throw new Error(`the launch was not for ${plugin}: ${request.slice(0, 2000)}`);
    });

    await check('.call in the Debug Console: paused on the probe line', async () => {
      await consoleInput('.call count {"text": "a b c"}');
      const called = Date.now();
      await until('a stopped event', async () => dapOut(tmp).find((m) => m.event === 'stopped'), 30000);
      await page.waitForSelector('.monaco-editor .debug-top-stack-frame-line, .monaco-editor .codicon-debug-stackframe', { timeout: 10000 });
      figures.push(`.call entered → paused on the probe line on screen: ${Date.now() - called} ms`);
      figures.push(`F5 → paused on the probe line on screen (the .call typed through the command palette included): ${Date.now() - f5} ms`);
      const current = await text('.monaco-editor .view-overlays .current-line, .monaco-editor .line-numbers.active-line-number');
      if (!current.includes(String(probeLine)) && !(await text('.part.statusbar')).includes(`Ln ${probeLine},`)) {
        throw new Error(`not on line ${probeLine}: ${current}`);
      }
    });

    await check('Variables shows the bindings (text, words)', async () => {
      await until('text and words in Variables', async () => {
        const vars = await text('.debug-pane .debug-variables, .debug-variables');
        return vars.includes('words') && vars.includes('a b c') && /words\s*[:=]?\s*3/.test(vars) ? vars : false;
      }, 10000);
    });

    await check('the Debug Console evaluates words', async () => {
      await consoleInput('words * 10');
      await until('30 in the console', async () => (await text('.repl .monaco-list-rows')).includes('30'), 10000);
    });

    await check('a conditional breakpoint (words > 3) stops only when true', async () => {
      await page.keyboard.press('F5'); // continue
      await until('the call answered', async () => (await text('.repl .monaco-list-rows')).includes('"words"'), 10000);
      await page.click('.monaco-editor .view-lines');
      await goToLine(probeLine);
      await page.keyboard.press('F9'); // off
      await command('Debug: Add Conditional Breakpoint...');
      await focusIn('.breakpoint-widget');
      await page.keyboard.type('words > 3');
      await page.keyboard.press('Enter');
      await page.waitForSelector('.breakpoint-widget', { state: 'hidden', timeout: 5000 });
      const stops = () => dapOut(tmp).filter((m) => m.event === 'stopped').length;
      const before = stops();
      await until('the condition sent', async () => fs.readFileSync(path.join(tmp, 'dap.in'), 'utf8').includes('"condition":"words > 3"'), 10000);
      await consoleInput('.call count {"text": "a b"}');
      await until('the false call answered', async () => /"words":\s*2/.test(await text('.repl .monaco-list-rows')), 10000);
      if (stops() !== before) throw new Error('stopped although words > 3 was false');
      await consoleInput('.call count {"text": "a b c d e"}');
      await until('a stop for words = 5', async () => stops() === before + 1, 10000);
      await until('Variables shows words = 5', async () => /words\s*[:=]?\s*5/.test(await text('.debug-variables')), 10000);
      await page.click('.debug-toolbar .codicon-debug-stop');
      await until('the session ended', async () => dapOut(tmp).find((m) => ['disconnect', 'terminate'].includes(m.command) || m.event === 'terminated'), 15000);
      await page.waitForSelector('.debug-toolbar', { state: 'hidden', timeout: 10000 });
    });

    await check('a profile written makes inlay hints and lenses appear', async () => {
      const calls = path.join(tmp, 'calls.jsonl');
      fs.writeFileSync(calls, '{"method": "count", "input": {"text": "a b c d"}}\n{"method": "count", "input": {"text": "e f"}}\n');
      await page.click('.monaco-editor .view-lines');
      execFileSync(bin('ax'), ['run', '--profile', '--calls', calls, plugin], { stdio: 'pipe' });
      const written = fs.statSync(profileJson).mtimeMs;
      await until('"of profile" inlay hints', async () => /calls\s·\s[\d.<]+%\sof\sprofile/.test(await text('.monaco-editor .view-lines')), 20000);
      figures.push(`profile written → inlay hints visible: ${Math.round(Date.now() - written)} ms`);
      await until('the hot spot lens', async () => /hot\sspot\s#1,\s[\d.<]+%\sself\sof\sprofile/.test(await text('.monaco-editor .codelens-decoration')), 10000);
    });

    await check('ax-lsp killed: restarted after a back-off, the reason logged, hints back', async () => {
      const pids = starts('ax-lsp');
      process.kill(Number(pids[pids.length - 1]), 'SIGKILL');
      await until('a new ax-lsp', async () => starts('ax-lsp').length > pids.length, 15000);
      await until('the restart logged', async () => /exited .*Restarting it in 1 s \(attempt 1 of 5\)/.test(outputLog()), 5000);
      await until('hints again', async () => /%\sof\sprofile/.test(await text('.monaco-editor .view-lines')), 20000);
    });

    await check('the User-settings paths (ignored by VS Code in a remote window) are named, with Remote settings as the scope to use', async () => {
      const log = outputLog();
      if (!/ax\.lsp\.path is ".*" in User settings .*machine-overridable.*Remote settings/.test(log)) {
        throw new Error(`no note about the User settings scope in the ax output:\n${log.slice(0, 3000)}`);
      }
    });

    await check('Run and Debug → create a launch.json file: one configuration per plugin crate', async () => {
      await command('Debug: Add Configuration...');
      const launchJson = path.join(vscodeDir, 'launch.json');
      // VS Code asks which debugger only when several could debug the active file.
      const next = await until('launch.json or the debugger pick', async () =>
        fs.existsSync(launchJson) ? 'written' : (await text('.quick-input-list .monaco-list-row')).includes('ax plugin') ? 'pick' : false, 10000);
      if (next === 'pick') {
        await page.keyboard.type('ax plugin');
        await page.keyboard.press('Enter');
      }
      const written = await until('launch.json written', async () => fs.existsSync(launchJson) && fs.readFileSync(launchJson, 'utf8'), 10000);
      const crates = execFileSync('git', ['ls-files', '**/ax-plugin.toml', 'ax-plugin.toml'], { cwd: repo, encoding: 'utf8' }).trim().split('\n');
      const configs = JSON.parse(written.replace(/^\s*\/\/.*$/gm, '')).configurations;
      if (/METHOD/.test(written)) throw new Error(`a placeholder in launch.json:\n${written}`);
      const expected = crates.map((c) => `\${workspaceFolder}/${path.dirname(c)}`).sort();
      const plugins = configs.map((c) => c.plugin).sort();
      if (JSON.stringify(plugins) !== JSON.stringify(expected)) throw new Error(`plugins ${JSON.stringify(plugins)}, expected ${JSON.stringify(expected)}`);
    });
  } catch (e) {
    if (!(e instanceof StepFailed)) {
      results.push({ name: 'the scenario ran', ok: false });
      console.log(`not ok ${results.length} - the scenario ran\n  ---\n  error: ${JSON.stringify(String(e.stack ?? e).slice(0, 2000))}\n  ...`);
    }
  } finally {
    await browser.close().catch(() => {});
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {}
    if (!hadVscodeDir) fs.rmSync(vscodeDir, { recursive: true, force: true });
    const changed = guarded.filter((f) => !fs.readFileSync(f).equals(original.get(f)));
    for (const f of changed) fs.writeFileSync(f, original.get(f));
    const ok = changed.length === 0;
    results.push({ name: "the repository's files are left as they were", ok });
    console.log(`${ok ? 'ok' : 'not ok'} ${results.length} - the repository's files are left as they were${ok ? '' : ` (restored: ${changed.join(', ')})`}`);
    if (results.some((r) => !r.ok)) {
      fs.writeFileSync(path.join(artefacts, 'code-server.log'), serverLog);
      console.log(`# code-server's log: ${path.join(artefacts, 'code-server.log')}`);
    }
    if (results.every((r) => r.ok)) fs.rmSync(tmp, { recursive: true, force: true });
    else console.log(`# the wrappers' records and the DAP trace (dap.in, dap.out): ${tmp}`);
  }
  for (const f of figures) console.log(`# ${f}`);
  console.log(`1..${results.length}`);
  console.log(`# pass ${results.filter((r) => r.ok).length}`);
  console.log(`# fail ${results.filter((r) => !r.ok).length}`);
  process.exitCode = results.every((r) => r.ok) ? 0 : 1;
}

main();
