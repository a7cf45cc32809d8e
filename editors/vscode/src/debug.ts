//! The `ax` debug type: a `DebugConfigurationProvider` that fills and checks
//! configurations (`logic/launch.ts` decides; this asks the user to pick a
//! plugin when there are several) and a `DebugAdapterDescriptorFactory` that
//! starts `ax-dap --stdio`.

import * as vscode from 'vscode';

import { DebugConfig, initialConfigurations, launchFor, resolveConfiguration, checkPaths } from './logic/launch';
import { NO_PLUGIN } from './logic/plugins';
import { Attributes } from './logic/schema';
import { kindOf, Workspace } from './workspace';

export function registerDebugger(context: vscode.ExtensionContext, workspace: Workspace): void {
  const attributes = (context.extension.packageJSON as { contributes: { debuggers: { type: string; configurationAttributes: Attributes }[] } })
    .contributes.debuggers.find((d) => d.type === 'ax')!.configurationAttributes;
  const provider = new ConfigurationProvider(workspace, attributes);
  context.subscriptions.push(
    vscode.debug.registerDebugConfigurationProvider('ax', provider),
    vscode.debug.registerDebugConfigurationProvider('ax', new DynamicProvider(workspace), vscode.DebugConfigurationProviderTriggerKind.Dynamic),
    vscode.debug.registerDebugAdapterDescriptorFactory('ax', new AdapterFactory(workspace)),
  );
}

class ConfigurationProvider implements vscode.DebugConfigurationProvider {
  constructor(
    private readonly workspace: Workspace,
    private readonly attributes: Attributes,
  ) {}

  /** The launch.json VS Code offers to create: one launch configuration per plugin crate of the folder. */
  async provideDebugConfigurations(folder: vscode.WorkspaceFolder | undefined): Promise<vscode.DebugConfiguration[]> {
    const configs = initialConfigurations(await this.workspace.plugins(), folder?.uri.fsPath, this.workspace.callsFiles());
    if (configs.length === 0) void vscode.window.showInformationMessage(NO_PLUGIN);
    return configs as vscode.DebugConfiguration[];
  }

  async resolveDebugConfiguration(
    _folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): Promise<vscode.DebugConfiguration | undefined> {
    let resolution = resolveConfiguration(config as DebugConfig, {
      plugins: await this.workspace.plugins(),
      activeFile: this.workspace.activeFile(),
      activePlugin: this.workspace.activePlugin(),
      callsFiles: this.workspace.callsFiles(),
    }, this.attributes);
    if (resolution.kind === 'pick') {
      const plugin = await this.workspace.pick(resolution.candidates);
      if (plugin === undefined) return undefined;
      resolution = resolution.complete(plugin);
    }
    switch (resolution.kind) {
      case 'ok':
        return resolution.config as vscode.DebugConfiguration;
      case 'error':
        return refuse(resolution.message);
      case 'pick':
        return undefined;
    }
  }

  resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): vscode.DebugConfiguration | undefined {
    const base = typeof config.cwd === 'string' ? config.cwd : folder?.uri.fsPath;
    const problem = checkPaths(config as DebugConfig, base, kindOf);
    return problem === undefined ? config : refuse(problem);
  }
}

/** "Run and Debug" → "ax…": a ready launch configuration per plugin, no launch.json needed. */
class DynamicProvider implements vscode.DebugConfigurationProvider {
  constructor(private readonly workspace: Workspace) {}

  async provideDebugConfigurations(): Promise<vscode.DebugConfiguration[]> {
    const plugins = await this.workspace.plugins();
    return plugins.map((dir) => launchFor(dir, this.workspace.callsFiles()[dir]) as vscode.DebugConfiguration);
  }
}

function refuse(message: string): undefined {
  // `undefined` stops the launch quietly; the message says why.
  void vscode.window.showErrorMessage(message);
  return undefined;
}

class AdapterFactory implements vscode.DebugAdapterDescriptorFactory {
  constructor(private readonly workspace: Workspace) {}

  createDebugAdapterDescriptor(session: vscode.DebugSession): vscode.ProviderResult<vscode.DebugAdapterDescriptor> {
    const adapter = this.workspace.find('ax-dap');
    // VS Code shows a thrown error as the reason the session did not start.
    if ('error' in adapter) throw new Error(adapter.error);
    // The adapter starts `ax` from AX_BIN, else beside itself: hand it the
    // one this extension uses, so both come from the same build.
    const ax = this.workspace.binary('ax', true);
    const cwd = session.workspaceFolder?.uri.fsPath ?? this.workspace.folders()[0];
    return new vscode.DebugAdapterExecutable(adapter.path, ['--stdio'], { env: ax ? { AX_BIN: ax } : undefined, cwd });
  }
}
