//! Plugin crates in a workspace: a plugin is the directory holding an
//! `ax-plugin.toml`. Pure path logic, free of `vscode` imports so that plain
//! node tests it; `../workspace.ts` feeds it the manifests VS Code finds.

import * as path from 'node:path';

/** Directories that hold build output or dependencies, never a plugin of the user's. */
const IGNORED_SEGMENTS = new Set(['target', 'node_modules', '.git']);

/** The plugin directories of a list of `ax-plugin.toml` paths: deduplicated, sorted, build output left out. */
export function pluginDirs(manifests: readonly string[]): string[] {
  const dirs = new Set<string>();
  for (const manifest of manifests) {
    if (path.basename(manifest) !== 'ax-plugin.toml') continue;
    const dir = path.dirname(path.resolve(manifest));
    if (dir.split(path.sep).some((segment) => IGNORED_SEGMENTS.has(segment))) continue;
    dirs.add(dir);
  }
  return [...dirs].sort();
}

/** Whether `file` is `dir` or lies under it. */
export function isInside(file: string, dir: string): boolean {
  const relative = path.relative(dir, file);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/** The plugin a file belongs to: the innermost plugin directory containing it. */
export function pluginOfFile(file: string | undefined, dirs: readonly string[]): string | undefined {
  if (file === undefined) return undefined;
  let best: string | undefined;
  for (const dir of dirs) {
    if (isInside(file, dir) && (best === undefined || dir.length > best.length)) best = dir;
  }
  return best;
}

/**
 * The plugin a file belongs to, read from the disk: the nearest directory
 * upward holding an `ax-plugin.toml`. It does not depend on the workspace
 * search, which leaves out excluded folders and may not have run yet.
 */
export function nearestPlugin(file: string | undefined, isFile: (p: string) => boolean): string | undefined {
  if (file === undefined) return undefined;
  let dir = path.dirname(path.resolve(file));
  for (;;) {
    if (!dir.split(path.sep).some((segment) => IGNORED_SEGMENTS.has(segment)) && isFile(path.join(dir, 'ax-plugin.toml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** How a plugin directory is shown in a pick list: relative to the workspace folder holding it. */
export function pluginLabel(dir: string, workspaceFolders: readonly string[]): string {
  for (const folder of workspaceFolders) {
    if (isInside(dir, folder)) {
      const relative = path.relative(folder, dir);
      return relative === '' ? path.basename(dir) : relative;
    }
  }
  return dir;
}

/**
 * Which plugin a command or a debug session without one is about: the one of
 * the active file (`activePlugin`, from `nearestPlugin`, else the innermost of
 * `dirs` holding it), else the only one; `pick` when the user has to choose, and
 * `none` when the workspace has no plugin.
 */
export type PluginChoice =
  | { kind: 'plugin'; dir: string }
  | { kind: 'pick'; candidates: string[] }
  | { kind: 'none' };

export function choosePlugin(dirs: readonly string[], activeFile: string | undefined, activePlugin?: string): PluginChoice {
  const ofFile = activePlugin ?? pluginOfFile(activeFile, dirs);
  if (ofFile !== undefined) return { kind: 'plugin', dir: ofFile };
  if (dirs.length === 1) return { kind: 'plugin', dir: dirs[0] };
  if (dirs.length === 0) return { kind: 'none' };
  return { kind: 'pick', candidates: [...dirs] };
}

/** The message shown when a command needs a plugin and the workspace has none. */
export const NO_PLUGIN =
  'ax: no plugin in this workspace: expected a folder with an ax-plugin.toml (create one with `ax new NAME`), or open the plugin crate as a folder';
