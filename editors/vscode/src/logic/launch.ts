//! Resolving an `ax` debug configuration before VS Code starts the adapter:
//! filling the plugin from the workspace when the user presses F5 without a
//! launch.json (or leaves `plugin` out), and checking every attribute against
//! the contributed schema so a mistake is a clear message instead of an
//! adapter error. Free of `vscode` imports; `../debug.ts` asks the user to
//! pick when this says so.

import * as path from 'node:path';

import { choosePlugin, isInside, NO_PLUGIN } from './plugins';
import { Attributes, validateConfiguration } from './schema';

export type DebugConfig = Record<string, unknown> & { type?: string; request?: string; name?: string };

/** What the workspace offers to fill a configuration with. */
export interface LaunchContext {
  /** Plugin directories of the workspace (`plugins.ts`). */
  plugins: readonly string[];
  /** The file of the active editor, whose plugin is preferred. */
  activeFile?: string;
  /** The plugin of the active file as found on disk (`nearestPlugin`). */
  activePlugin?: string;
  /** The calls file the user last ran this plugin with, per plugin directory. */
  callsFiles?: Readonly<Record<string, string>>;
}

export type Resolution =
  | { kind: 'ok'; config: DebugConfig }
  | { kind: 'pick'; candidates: string[]; complete: (plugin: string) => Resolution }
  | { kind: 'error'; message: string };

/** A launch configuration for one plugin, as F5 without launch.json and the dynamic configurations make it. */
export function launchFor(plugin: string, callsFile?: string): DebugConfig {
  const config: DebugConfig = { type: 'ax', request: 'launch', name: `Debug ${path.basename(plugin)}`, plugin };
  // With no calls the session would end as soon as it started: run the
  // remembered calls file, else keep the host up for `.call` in the console.
  if (callsFile !== undefined) config.callsFile = callsFile;
  else config.keepRunning = true;
  return config;
}

/**
 * What "create a launch.json file" writes: one launch configuration per plugin
 * crate, its path relative to the workspace folder when it lies inside
 * (`${workspaceFolder}/examples/word-count`), so the file can be committed.
 * None when the workspace has no plugin: a placeholder would not run.
 */
export function initialConfigurations(
  plugins: readonly string[],
  folder: string | undefined,
  callsFiles: Readonly<Record<string, string>> = {},
): DebugConfig[] {
  const portable = (p: string): string => {
    if (folder === undefined || !isInside(p, folder)) return p;
    const relative = path.relative(folder, p).split(path.sep).join('/');
    return relative === '' ? '${workspaceFolder}' : `\${workspaceFolder}/${relative}`;
  };
  const inFolder = folder === undefined ? plugins : plugins.filter((dir) => isInside(dir, folder));
  const names = inFolder.map((dir) => path.basename(dir));
  return inFolder.map((dir, i) => {
    const callsFile = callsFiles[dir];
    const config = launchFor(portable(dir), callsFile === undefined ? undefined : portable(callsFile));
    // Two crates with the same directory name get their relative path as name.
    if (names.indexOf(names[i]) !== names.lastIndexOf(names[i])) config.name = `Debug ${portable(dir).replace('${workspaceFolder}/', '')}`;
    return config;
  });
}

/**
 * The configuration to start, one to complete with the plugin the user picks,
 * or the message that says why there is none.
 */
export function resolveConfiguration(config: DebugConfig, context: LaunchContext, attributes: Attributes): Resolution {
  // F5 without launch.json: VS Code hands over `{}` (or `{type}`, `{noDebug}`).
  const empty = (config.type === undefined || config.type === 'ax') && config.request === undefined && config.name === undefined;
  if (empty || (config.request === 'launch' && config.plugin === undefined)) {
    const fill = (plugin: string): DebugConfig => ({ ...launchFor(plugin, context.callsFiles?.[plugin]), ...config, plugin });
    const choice = choosePlugin(context.plugins, context.activeFile, context.activePlugin);
    switch (choice.kind) {
      case 'none':
        return {
          kind: 'error',
          message: `${NO_PLUGIN}; or set "plugin" in launch.json to a crate directory, manifest or library`,
        };
      case 'pick':
        return { kind: 'pick', candidates: choice.candidates, complete: (plugin) => checked(fill(plugin), attributes) };
      case 'plugin':
        return checked(fill(choice.dir), attributes);
    }
  }
  return checked(config, attributes);
}

function checked(config: DebugConfig, attributes: Attributes): Resolution {
  const name = config.name === undefined ? '' : ` "${String(config.name)}"`;
  const request = config.request;
  if (typeof request !== 'string' || !(request in attributes)) {
    const expected = Object.keys(attributes).map((r) => `"${r}"`).join(' or ');
    return {
      kind: 'error',
      message: `ax: debug configuration${name}: "request" is ${JSON.stringify(request) ?? 'missing'}; expected ${expected}`,
    };
  }
  const problems = validateConfiguration(config, attributes[request]);
  if (problems.length > 0) {
    return { kind: 'error', message: `ax: ${request} configuration${name}: ${problems.join('; ')}` };
  }
  return { kind: 'ok', config: { ...config, type: 'ax' } };
}

/**
 * Checks that need the paths as the adapter will see them, once VS Code has
 * substituted `${workspaceFolder}` and friends: the plugin, the calls file
 * and the working directory must exist. Relative paths are taken from `cwd`
 * or the workspace folder, as the adapter does.
 */
export function checkPaths(
  config: DebugConfig,
  base: string | undefined,
  exists: (p: string) => 'file' | 'dir' | undefined,
): string | undefined {
  if (config.request !== 'launch') return undefined;
  const name = config.name === undefined ? '' : ` "${String(config.name)}"`;
  const resolve = (p: string) => (path.isAbsolute(p) || base === undefined ? p : path.join(base, p));
  const problems: string[] = [];
  if (typeof config.plugin === 'string' && exists(resolve(config.plugin)) === undefined) {
    problems.push(`"plugin" ${config.plugin} does not exist; expected a crate directory (with ax-plugin.toml), its manifest or a library`);
  }
  if (typeof config.callsFile === 'string' && exists(resolve(config.callsFile)) !== 'file') {
    problems.push(`"callsFile" ${config.callsFile} is not a file; expected a file of JSON lines {"method": …, "input": …}`);
  }
  if (typeof config.cwd === 'string' && exists(resolve(config.cwd)) !== 'dir') {
    problems.push(`"cwd" ${config.cwd} is not a directory`);
  }
  return problems.length > 0 ? `ax: launch configuration${name}: ${problems.join('; ')}` : undefined;
}
