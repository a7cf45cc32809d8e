//! The commands: run the plugin, profile it, compare two benchmark reports,
//! open the flame graph or the HTML performance report of a profile. Each builds its `ax` command line with
//! `logic/cli.ts`; runs and profiles are VS Code tasks (their output in the
//! terminal panel, their end observable), compare, flame graph and report run `ax`
//! directly and show what it wrote.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';

import { compareArgs, compareDocument, flamegraphArgs, parseCall, profileArgs, reportArgs, runArgs } from './logic/cli';
import { Command } from './logic/commands';
import { flamegraphHtml } from './logic/flamegraph';
import { profilePath } from './logic/profile';
import { reportHtml } from './logic/report';
import { kindOf, Workspace } from './workspace';

const LAST_CALL = 'ax.lastCall';

export function commandHandlers(
  context: vscode.ExtensionContext,
  workspace: Workspace,
  output: vscode.OutputChannel,
): Record<Command, (...args: unknown[]) => Promise<unknown>> {
  return {
    'ax.run': (pluginArg) => run(context, workspace, pluginArg),
    'ax.profile': (pluginArg) => profile(workspace, pluginArg),
    'ax.compareBenchmarks': (base, next) => compare(workspace, output, base, next),
    'ax.openFlamegraph': (profileArg) => flamegraph(context, workspace, output, profileArg),
    'ax.openReport': (profileArg) => report(context, workspace, output, profileArg),
  };
}

async function run(context: vscode.ExtensionContext, workspace: Workspace, pluginArg: unknown): Promise<void> {
  const plugin = await workspace.plugin(pluginArg);
  if (plugin === undefined) return;
  const remembered = workspace.callsFiles()[plugin];
  type Item = vscode.QuickPickItem & { action: 'file' | 'choose' | 'call' };
  const items: Item[] = [
    { label: '$(symbol-method) One call…', description: 'METHOD and its JSON input', action: 'call' },
    { label: '$(folder-opened) A calls file…', description: 'one JSON object {"method", "input"} per line', action: 'choose' },
  ];
  if (remembered !== undefined) items.unshift({ label: `$(file) ${path.basename(remembered)}`, description: remembered, action: 'file' });
  const picked = await vscode.window.showQuickPick(items, { title: `ax: run ${path.basename(plugin)}` });
  if (picked === undefined) return;
  if (picked.action === 'call') {
    const lastCalls = context.workspaceState.get<Record<string, string>>(LAST_CALL, {});
    const text = await vscode.window.showInputBox({
      title: `ax: call ${path.basename(plugin)}`,
      prompt: 'METHOD, then its input as JSON',
      placeHolder: 'count {"text": "a b c"}',
      value: lastCalls[plugin],
      validateInput: (t) => {
        const call = parseCall(t);
        return 'error' in call ? call.error : undefined;
      },
    });
    if (text === undefined) return;
    const call = parseCall(text);
    if ('error' in call) return;
    await context.workspaceState.update(LAST_CALL, { ...lastCalls, [plugin]: text });
    await runTask(workspace, plugin, `run ${call.method}`, runArgs(plugin, call));
    return;
  }
  const callsFile = await workspace.callsFile(plugin, picked.action === 'choose');
  if (callsFile !== undefined) await runTask(workspace, plugin, 'run', runArgs(plugin, { callsFile }));
}

async function profile(workspace: Workspace, pluginArg: unknown): Promise<void> {
  const plugin = await workspace.plugin(pluginArg);
  if (plugin === undefined) return;
  const callsFile = await workspace.callsFile(plugin, false);
  if (callsFile === undefined) return;
  // The status bar and the language server see the new profile through their file watchers.
  const code = await runTask(workspace, plugin, 'profile', profileArgs(plugin, callsFile));
  if (code !== undefined && code !== 0) {
    void vscode.window.showErrorMessage(`ax: profiling ${path.basename(plugin)} failed (exit status ${code}); the terminal shows why`);
  }
}

/** Runs `ax ARGS` as a task in the terminal panel; resolves when it ends. */
async function runTask(workspace: Workspace, plugin: string, what: string, args: string[]): Promise<number | undefined> {
  const ax = workspace.binary('ax');
  if (ax === undefined) return undefined;
  const cwd = kindOf(plugin) === 'dir' ? plugin : path.dirname(plugin);
  const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(plugin)) ?? vscode.TaskScope.Workspace;
  const task = new vscode.Task(
    { type: 'ax', command: args[0], plugin },
    folder,
    `${what} ${path.basename(plugin)}`,
    'ax',
    new vscode.ProcessExecution(ax, args, { cwd }),
  );
  task.presentationOptions = { reveal: vscode.TaskRevealKind.Always, clear: true };
  // Listen before starting: a process that fails at once may end before executeTask returns.
  const ended = new Map<vscode.TaskExecution, number | undefined>();
  let execution: vscode.TaskExecution | undefined;
  let finish: (code: number | undefined) => void = () => {};
  const finished = new Promise<number | undefined>((resolve) => (finish = resolve));
  const listener = vscode.tasks.onDidEndTaskProcess((e) => {
    if (execution === undefined) ended.set(e.execution, e.exitCode);
    else if (e.execution === execution) finish(e.exitCode);
  });
  try {
    execution = await vscode.tasks.executeTask(task);
    if (ended.has(execution)) finish(ended.get(execution));
    return await finished;
  } finally {
    listener.dispose();
  }
}

/** Runs `ax ARGS` and collects its output. */
function capture(ax: string, args: string[], cwd: string | undefined): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(ax, args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr: error && code === null ? `${stderr}${error.message}` : stderr });
    });
  });
}

async function compare(workspace: Workspace, output: vscode.OutputChannel, baseArg: unknown, nextArg: unknown): Promise<void> {
  const pick = async (title: string) => {
    const chosen = await vscode.window.showOpenDialog({
      title,
      canSelectMany: false,
      filters: { 'ax perf reports': ['json'], 'All files': ['*'] },
    });
    return chosen?.[0]?.fsPath;
  };
  const base = typeof baseArg === 'string' ? baseArg : await pick('ax: base benchmark report (ax perf run --json -o BASE.json)');
  if (base === undefined) return;
  const next = typeof nextArg === 'string' ? nextArg : await pick('ax: new benchmark report, compared with the base');
  if (next === undefined) return;
  const ax = workspace.binary('ax');
  if (ax === undefined) return;
  const args = compareArgs(base, next);
  output.appendLine(`$ ${ax} ${args.join(' ')}`);
  const result = await capture(ax, args, workspace.folders()[0]);
  output.append(result.stderr);
  const { markdown, failed } = compareDocument(base, next, result);
  const document = await vscode.workspace.openTextDocument({ language: 'markdown', content: markdown });
  if (failed) {
    await vscode.window.showTextDocument(document);
    void vscode.window.showErrorMessage(`ax perf compare failed: ${result.stderr.trim().split('\n').pop() ?? ''}`);
  } else {
    await vscode.commands.executeCommand('markdown.showPreview', document.uri);
  }
}

/** The profile a command is about: its argument, else the current plugin's; undefined (after saying why) when there is none. */
async function profileFor(workspace: Workspace, profileArg: unknown): Promise<string | undefined> {
  let profile: string | undefined = typeof profileArg === 'string' ? profileArg : undefined;
  if (profile === undefined) {
    const plugin = await workspace.plugin();
    if (plugin === undefined) return undefined;
    profile = profilePath(plugin, kindOf(plugin) === 'file' ? 'file' : 'dir');
  }
  if (kindOf(profile) !== 'file') {
    const choice = await vscode.window.showErrorMessage(
      `ax: no profile at ${profile}; profile the plugin first (ax run --profile)`,
      'Profile Plugin',
    );
    if (choice) await vscode.commands.executeCommand('ax.profile');
    return undefined;
  }
  return profile;
}

/** `ax perf report --html` beside the profile (`.ax/report.html`), shown in a webview. */
async function report(
  context: vscode.ExtensionContext,
  workspace: Workspace,
  output: vscode.OutputChannel,
  profileArg: unknown,
): Promise<void> {
  const profile = await profileFor(workspace, profileArg);
  if (profile === undefined) return;
  const file = path.join(path.dirname(profile), 'report.html');
  if (!(await runBeside(workspace, output, profile, reportArgs(profile, file), 'ax perf report'))) return;
  showWebview(context, 'ax.report', `Performance: ${pluginName(profile)}`, file, (text) => reportHtml(text, file));
}

async function flamegraph(
  context: vscode.ExtensionContext,
  workspace: Workspace,
  output: vscode.OutputChannel,
  profileArg: unknown,
): Promise<void> {
  const profile = await profileFor(workspace, profileArg);
  if (profile === undefined) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ax-flamegraph-'));
  const svg = path.join(dir, 'flamegraph.svg');
  if (!(await runBeside(workspace, output, profile, flamegraphArgs(profile, svg), 'ax perf flamegraph'))) return;
  // inferno's SVG is interactive in the webview: click to zoom, search.
  showWebview(context, 'ax.flamegraph', `Flame graph: ${pluginName(profile)}`, svg, (text) => flamegraphHtml(text, profile, svg));
}

/** Runs `ax ARGS` in the profile's folder, logging the command and its output; false, after saying so, when it failed. */
async function runBeside(workspace: Workspace, output: vscode.OutputChannel, profile: string, args: string[], what: string): Promise<boolean> {
  const ax = workspace.binary('ax');
  if (ax === undefined) return false;
  output.appendLine(`$ ${ax} ${args.join(' ')}`);
  const result = await capture(ax, args, path.dirname(profile));
  output.append(result.stdout + result.stderr);
  if (result.code !== 0) {
    void vscode.window.showErrorMessage(`${what} failed: ${result.stderr.trim().split('\n').pop() ?? `exit status ${result.code}`}`);
    return false;
  }
  return true;
}

/** The plugin a profile (`<plugin>/.ax/profile.json`) belongs to. */
function pluginName(profile: string): string {
  return path.basename(path.dirname(path.dirname(profile)));
}

/** `file` shown in a webview as `page` makes it, with a way out to the default viewer. */
function showWebview(
  context: vscode.ExtensionContext,
  viewType: string,
  title: string,
  file: string,
  page: (text: string) => string,
): void {
  try {
    const panel = vscode.window.createWebviewPanel(viewType, title, vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: [],
    });
    panel.webview.html = page(fs.readFileSync(file, 'utf8'));
    panel.webview.onDidReceiveMessage(() => void vscode.env.openExternal(vscode.Uri.file(file)), undefined, context.subscriptions);
  } catch (e) {
    void vscode.window.showErrorMessage(`ax: ${(e as Error).message}`);
  }
}

