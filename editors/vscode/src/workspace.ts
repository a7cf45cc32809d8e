//! The workspace as the extension sees it: its plugin crates (found by their
//! `ax-plugin.toml`), the one the user means (active editor, else a pick), the
//! calls file remembered per plugin, and binaries found through the settings.
//! The decisions are in `logic/`; this module only asks VS Code.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

import { Binary, findBinary, Found, SETTING } from './logic/binaries';
import { choosePlugin, NO_PLUGIN, pluginDirs, pluginLabel } from './logic/plugins';

const CALLS_FILES = 'ax.callsFiles';

export class Workspace {
  constructor(private readonly state: vscode.Memento) {}

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

  /** The plugin a command is about: its argument, else the active file's, else the only one, else a pick. */
  async plugin(argument?: unknown): Promise<string | undefined> {
    if (typeof argument === 'string' && argument !== '') return argument;
    if (argument instanceof vscode.Uri) return argument.fsPath;
    const dirs = await this.plugins();
    const choice = choosePlugin(dirs, this.activeFile());
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

  /** A binary's path, or the message that says how to get it. */
  find(name: Binary): Found {
    return findBinary(name, {
      setting: vscode.workspace.getConfiguration().get<string>(SETTING[name]),
      workspaceFolders: this.folders(),
      env: process.env,
      isFile: (p) => {
        try {
          return fs.statSync(p).isFile();
        } catch {
          return false;
        }
      },
    });
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
