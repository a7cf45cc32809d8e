//! The `ax-lsp` client: started with `vscode-languageclient` for the Rust
//! files of the workspace's plugin crates and their `ax-plugin.toml`, with the
//! `ax.inlayHints.*` / `ax.hotSpots` settings as `initializationOptions` and
//! in `workspace/didChangeConfiguration` (`logic/settings.ts` maps them).
//! Restarted when the set of plugin crates changes, since the document
//! selector names them.

import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  DocumentFilter,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from 'vscode-languageclient/node';

import { affectsServer, didChangeConfiguration, ServerSettings, serverSettings } from './logic/settings';
import { Workspace } from './workspace';

export function currentSettings(): ServerSettings {
  const config = vscode.workspace.getConfiguration('ax');
  return serverSettings((key) => config.get(key));
}

export class LanguageServer implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private plugins: string[] = [];
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly workspace: Workspace,
    private readonly output: vscode.OutputChannel,
  ) {
    this.subscriptions.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (affectsServer((section) => e.affectsConfiguration(section))) void this.sendSettings();
        if (e.affectsConfiguration('ax.lsp.path')) void this.restart();
      }),
    );
  }

  /** Starts the server if the workspace has plugins, or restarts it when they changed. */
  async refresh(): Promise<void> {
    const plugins = await this.workspace.plugins();
    if (this.client !== undefined && plugins.join('\n') === this.plugins.join('\n')) return;
    this.plugins = plugins;
    await this.restart();
  }

  async restart(): Promise<void> {
    await this.stop();
    if (this.plugins.length === 0) return;
    const server = this.workspace.find('ax-lsp');
    if ('error' in server) {
      this.output.appendLine(`${server.error} Inlay hints and diagnostics from profiles are off until then.`);
      return;
    }
    const serverOptions: ServerOptions = { command: server.path, args: ['--stdio'] };
    const documentSelector: DocumentFilter[] = this.plugins.flatMap((dir) => {
      const root = dir.replace(/\\/g, '/');
      return [
        { scheme: 'file', language: 'rust', pattern: `${root}/**/*.rs` },
        { scheme: 'file', pattern: `${root}/ax-plugin.toml` },
      ];
    });
    const clientOptions: LanguageClientOptions = {
      documentSelector,
      initializationOptions: currentSettings(),
      outputChannel: this.output,
      middleware: {
        workspace: {
          // Should the server ask for the `ax` section, it gets the same object.
          configuration: (params, token, next) =>
            params.items.every((item) => item.section === 'ax') ? params.items.map(() => currentSettings()) : next(params, token),
        },
      },
    };
    this.client = new LanguageClient('ax-lsp', 'ax-lsp', serverOptions, clientOptions);
    this.output.appendLine(`ax: starting ${server.path} --stdio for ${this.plugins.length} plugin crate(s)`);
    try {
      await this.client.start();
    } catch (e) {
      this.output.appendLine(`ax: ${server.path} did not start: ${(e as Error).message}`);
    }
  }

  private async sendSettings(): Promise<void> {
    if (this.client?.isRunning()) {
      await this.client.sendNotification(DidChangeConfigurationNotification.type, didChangeConfiguration(currentSettings()));
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined && client.needsStop()) await client.stop();
  }

  dispose(): void {
    void this.stop();
    for (const s of this.subscriptions) s.dispose();
  }
}
