//! The ax extension's entry point: wires the debug type (`debug.ts`), the
//! language client (`lsp.ts`), the commands (`commands.ts`) and the profile
//! status bar item (`status.ts`) to one `Workspace`. The logic lives in
//! `logic/`, free of `vscode` imports, where plain node tests it.

import * as path from 'node:path';
import * as vscode from 'vscode';

import { commandHandlers } from './commands';
import { registerDebugger } from './debug';
import { COMMANDS } from './logic/commands';
import { LanguageServer } from './lsp';
import { ProfileStatusItem } from './status';
import { Workspace } from './workspace';

let server: LanguageServer | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('ax');
  // globalStorageUri is <user data>/User/globalStorage/<extension>: its
  // settings.json is the User settings file of the same installation.
  const userSettings = path.join(context.globalStorageUri.fsPath, '..', '..', 'settings.json');
  const workspace = new Workspace(context.workspaceState, output, userSettings);
  context.subscriptions.push(output);

  registerDebugger(context, workspace);

  const handlers = commandHandlers(context, workspace, output);
  for (const command of COMMANDS) {
    context.subscriptions.push(vscode.commands.registerCommand(command, handlers[command]));
  }

  const status = new ProfileStatusItem(workspace);
  context.subscriptions.push(status);
  void status.refresh();

  server = new LanguageServer(workspace, output);
  context.subscriptions.push(server);
  // A plugin crate created or removed changes what the server is started for.
  const manifests = vscode.workspace.createFileSystemWatcher('**/ax-plugin.toml');
  const refresh = () => {
    void server?.refresh();
    void status.refresh();
  };
  context.subscriptions.push(
    manifests,
    manifests.onDidCreate(refresh),
    manifests.onDidDelete(refresh),
    vscode.workspace.onDidChangeWorkspaceFolders(refresh),
  );
  void server.refresh();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
}
