//! The workspace as the extension sees it: its plugin crates (found by their
//! `ax-plugin.toml`), the one the user means (active editor, else a pick), the
//! calls file remembered per plugin, and binaries found through the settings
//! (every scope `inspect` shows, and in a remote window the User settings file
//! when it is on this machine, as in code-server, to say it is ignored here).
//! The decisions are in `logic/`; this module only asks VS Code.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

import { Binary, findBinary, Found, SETTING, SettingValue } from './logic/binaries';
import { parseJsonc } from './logic/jsonc';
import { choosePlugin, nearestPlugin, NO_PLUGIN, pluginDirs, pluginLabel } from './logic/plugins';

const CALLS_FILES = 'ax.callsFiles';

export class Workspace {
  private readonly notes = new Set<string>();

  /**
   * `userSettingsFile`: the User settings.json of this VS Code installation
   * (beside the extension's global storage), read only in a remote window.
   */
  constructor(
    private readonly state: vscode.Memento,
    private readonly output: vscode.OutputChannel,
    private readonly userSettingsFile: string,
  ) {}

  /** The plugin directories of the workspace, build output left out. */
  async plugins(): Promise<string[]> {
    const manifests = await vscode.workspace.findFiles('**/ax-plugin.toml', '**/{target,node_modules,.git}/**');
    return pluginDirs(manifests.filter((u) => u.scheme === 'file').map((u) => u.fsPath));
  }

  folders(): string[] {
    return (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  }

  activeFile(): string | undefined {
    const uri = vscode.window.activeTextEditor?.document.uri;
    return uri?.scheme === 'file' ? uri.fsPath : undefined;
  }

  /** The plugin of the active file: the nearest ax-plugin.toml upward, on disk. */
  activePlugin(): string | undefined {
    return nearestPlugin(this.activeFile(), isFile);
  }

  /** The plugin a command is about: its argument, else the active file's, else the only one, else a pick. */
  async plugin(argument?: unknown): Promise<string | undefined> {
    if (typeof argument === 'string' && argument !== '') return argument;
    if (argument instanceof vscode.Uri) return argument.fsPath;
    const dirs = await this.plugins();
    const choice = choosePlugin(dirs, this.activeFile(), this.activePlugin());
    switch (choice.kind) {
      case 'plugin':
        return choice.dir;
      case 'none':
        void vscode.window.showErrorMessage(NO_PLUGIN);
        return undefined;
      case 'pick':
        return this.pick(choice.candidates);
    }
  }

  async pick(candidates: readonly string[]): Promise<string | undefined> {
    const folders = this.folders();
    const picked = await vscode.window.showQuickPick(
      candidates.map((dir) => ({ label: pluginLabel(dir, folders), description: dir, dir })),
      { title: 'ax: which plugin?', placeHolder: 'Plugin crates of this workspace (folders with an ax-plugin.toml)' },
    );
    return picked?.dir;
  }

  callsFiles(): Record<string, string> {
    return this.state.get<Record<string, string>>(CALLS_FILES, {});
  }

  async rememberCallsFile(plugin: string, file: string): Promise<void> {
    await this.state.update(CALLS_FILES, { ...this.callsFiles(), [plugin]: file });
  }

  /** The calls file of a plugin: the remembered one, unless `ask` or it is gone, then one the user chooses. */
  async callsFile(plugin: string, ask: boolean): Promise<string | undefined> {
    const remembered = this.callsFiles()[plugin];
    if (!ask && remembered !== undefined && fs.existsSync(remembered)) return remembered;
    const chosen = await vscode.window.showOpenDialog({
      title: `ax: calls file for ${path.basename(plugin)} (one JSON object {"method": …, "input": …} per line)`,
      defaultUri: vscode.Uri.file(remembered ? path.dirname(remembered) : plugin),
      canSelectMany: false,
      filters: { 'JSON lines': ['jsonl', 'ndjson', 'json'], 'All files': ['*'] },
    });
    if (!chosen || chosen.length === 0) return undefined;
    await this.rememberCallsFile(plugin, chosen[0].fsPath);
    return chosen[0].fsPath;
  }

  /** A binary's path, or `undefined` after showing how to get it. */
  binary(name: Binary, quiet = false): string | undefined {
    const found = this.find(name);
    if ('path' in found) return found.path;
    if (!quiet) {
      void vscode.window.showErrorMessage(found.error, 'Open Settings').then((choice) => {
        if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', SETTING[name]);
      });
    }
    return undefined;
  }

  /** A binary's path, or the message that says how to get it; a note about the settings goes to the output once. */
  find(name: Binary): Found {
    const folder = vscode.workspace.workspaceFolders?.[0];
    const inspected = vscode.workspace.getConfiguration(undefined, folder?.uri).inspect<string>(SETTING[name]);
    const settings: SettingValue[] = [];
    const add = (scope: string, value: unknown) => {
      if (typeof value === 'string' && value.trim() !== '') settings.push({ scope, value });
    };
    add('Workspace Folder settings', inspected?.workspaceFolderValue);
    add('Workspace settings', inspected?.workspaceValue);
    add(vscode.env.remoteName === undefined ? 'User settings' : 'Remote settings', inspected?.globalValue);
    const found = findBinary(name, {
      settings,
      ignored: vscode.env.remoteName === undefined ? undefined : this.ignoredUserSetting(name),
      remote: vscode.env.remoteName,
      workspaceFolders: this.folders(),
      env: process.env,
      isFile,
    });
    if ('note' in found && found.note !== undefined && !this.notes.has(found.note)) {
      this.notes.add(found.note);
      this.output.appendLine(found.note);
    }
    return found;
  }

  /** The value of a path setting in the User settings file, which VS Code does not apply in a remote window. */
  private ignoredUserSetting(name: Binary): SettingValue | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.userSettingsFile, 'utf8');
    } catch {
      return undefined;
    }
    const settings = parseJsonc(text);
    const value = typeof settings === 'object' && settings !== null ? (settings as Record<string, unknown>)[SETTING[name]] : undefined;
    return typeof value === 'string' && value.trim() !== '' ? { scope: `User settings (${this.userSettingsFile})`, value } : undefined;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** What a path is on disk. */
export function kindOf(p: string): 'file' | 'dir' | undefined {
  try {
    const stat = fs.statSync(p);
    return stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : undefined;
  } catch {
    return undefined;
  }
}
