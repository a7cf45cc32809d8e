//! The status bar item with the age of the last profile of the plugin in
//! front of the user (the active file's, else the only one), refreshed when a
//! `.ax/profile.json` changes, when the active editor changes, and every 30 s
//! so the age stays true. `logic/profile.ts` words it.

import * as fs from 'node:fs';
import * as vscode from 'vscode';

import { choosePlugin } from './logic/plugins';
import { profilePath, profileStatus } from './logic/profile';
import { kindOf, Workspace } from './workspace';

export class ProfileStatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('ax.profile', vscode.StatusBarAlignment.Left, 10);
  private readonly disposables: vscode.Disposable[] = [this.item];

  constructor(private readonly workspace: Workspace) {
    this.item.name = 'ax profile';
    const watcher = vscode.workspace.createFileSystemWatcher('**/.ax/profile.json');
    const refresh = () => void this.refresh();
    this.disposables.push(
      watcher,
      watcher.onDidCreate(refresh),
      watcher.onDidChange(refresh),
      watcher.onDidDelete(refresh),
      vscode.window.onDidChangeActiveTextEditor(refresh),
    );
    const timer = setInterval(refresh, 30_000);
    this.disposables.push({ dispose: () => clearInterval(timer) });
  }

  async refresh(): Promise<void> {
    const choice = choosePlugin(await this.workspace.plugins(), this.workspace.activeFile());
    if (choice.kind !== 'plugin') {
      this.item.hide();
      return;
    }
    const plugin = choice.dir;
    const file = profilePath(plugin, kindOf(plugin) === 'file' ? 'file' : 'dir');
    let contents: { text: string; mtimeMs: number } | undefined;
    try {
      contents = { text: fs.readFileSync(file, 'utf8'), mtimeMs: fs.statSync(file).mtimeMs };
    } catch {
      contents = undefined;
    }
    const status = profileStatus(plugin, contents, Date.now());
    this.item.text = status.text;
    this.item.tooltip = status.tooltip;
    this.item.command = { title: 'Profile Plugin', command: 'ax.profile', arguments: [plugin] };
    this.item.show();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
