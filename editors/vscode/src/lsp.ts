//! The `ax-lsp` client: started with `vscode-languageclient` for the Rust
//! files of the workspace's plugin crates and their `ax-plugin.toml`, with the
//! `ax.inlayHints.*` / `ax.hotSpots` settings as `initializationOptions` and
//! in `workspace/didChangeConfiguration` (`logic/settings.ts` maps them).
//! Restarted when the set of plugin crates changes, since the document
//! selector names them, and after it failed to start or exited, with the
//! back-off of `logic/restart.ts`; the output says why each time.

import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  DocumentFilter,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from 'vscode-languageclient/node';

import { RestartPolicy } from './logic/restart';
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
  private readonly policy = new RestartPolicy();
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly workspace: Workspace,
    private readonly output: vscode.OutputChannel,
  ) {
    this.subscriptions.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (affectsServer((section) => e.affectsConfiguration(section))) void this.sendSettings();
        if (e.affectsConfiguration('ax.lsp.path')) {
          this.policy.reset();
          void this.restart();
        }
      }),
    );
  }

  /** Starts the server if the workspace has plugins, or restarts it when they changed. */
  async refresh(): Promise<void> {
    const plugins = await this.workspace.plugins();
    if (this.client !== undefined && plugins.join('\n') === this.plugins.join('\n')) return;
    this.plugins = plugins;
    this.policy.reset();
    await this.restart();
  }

  async restart(): Promise<void> {
    await this.stop();
    if (this.plugins.length === 0) return;
    const server = this.workspace.find('ax-lsp');
    if ('error' in server) {
      this.failed(`${server.error} Inlay hints and diagnostics from profiles are off until then.`);
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
      // The client's own restarts (four, then it gives up for good) are
      // replaced by ours, which find the binary again and log why.
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        closed: () => {
          if (this.client === client) this.failed(`ax: ${server.path} exited (its last words, if any, are above).`);
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
      middleware: {
        workspace: {
          // Should the server ask for the `ax` section, it gets the same object.
          configuration: (params, token, next) =>
            params.items.every((item) => item.section === 'ax') ? params.items.map(() => currentSettings()) : next(params, token),
        },
      },
    };
    const client = new LanguageClient('ax-lsp', 'ax-lsp', serverOptions, clientOptions);
    this.client = client;
    this.output.appendLine(`ax: starting ${server.path} --stdio for ${this.plugins.length} plugin crate(s)`);
    try {
      await client.start();
      this.policy.started(Date.now());
    } catch (e) {
      // The close handler may have scheduled the restart already.
      if (this.client === client && this.retry === undefined) this.failed(`ax: ${server.path} did not start: ${(e as Error).message}`);
    }
  }

  /** Logs why the server is not running and schedules the next attempt, if any is left. */
  private failed(why: string): void {
    const decision = this.policy.failed(Date.now());
    if (decision.kind === 'give-up') {
      this.output.appendLine(`${why} Not restarting it after ${decision.attempts} attempts in a row; change ax.lsp.path or reload the window to try again.`);
      return;
    }
    this.output.appendLine(`${why} Restarting it in ${decision.delayMs / 1000} s (attempt ${decision.attempt} of ${decision.of}).`);
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.restart();
    }, decision.delayMs);
  }

  private async sendSettings(): Promise<void> {
    if (this.client?.isRunning()) {
      await this.client.sendNotification(DidChangeConfigurationNotification.type, didChangeConfiguration(currentSettings()));
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.retry);
    this.retry = undefined;
    const client = this.client;
    this.client = undefined;
    if (client !== undefined && client.needsStop()) await client.stop();
  }

  dispose(): void {
    void this.stop();
    for (const s of this.subscriptions) s.dispose();
  }
}
