//! Finding the `ax`, `ax-dap` and `ax-lsp` binaries: the user's setting (from
//! every scope VS Code applies here, the narrowest first), else a build in the
//! workspace (`target/debug`, then `target/release`, for people working on ax
//! itself or with it as a submodule), else `PATH`, else cargo's bin directory
//! (not on the `PATH` of a VS Code started from a desktop launcher). When none
//! is found, the message says how to get one.
//!
//! The path settings are `machine-overridable`: in a remote window (SSH, WSL,
//! containers, code-server) VS Code does not apply their User settings value,
//! only Remote and workspace settings. A value read from a User settings file
//! the extension can reach (`ignored`) is still used when it names a file on
//! this machine, with a note saying to move it to Remote settings; when
//! nothing is found, the message says which scope to set. Free of `vscode`
//! imports: the file system and the settings are parameters.

import * as os from 'node:os';
import * as path from 'node:path';

export type Binary = 'ax' | 'ax-dap' | 'ax-lsp';

/** The setting that names each binary. */
export const SETTING: Record<Binary, string> = { ax: 'ax.path', 'ax-dap': 'ax.dap.path', 'ax-lsp': 'ax.lsp.path' };

/** The `cargo install` line, run in an ax checkout, that installs each binary. */
export const INSTALL: Record<Binary, string> = {
  ax: 'cargo install --path runtime/cli',
  'ax-dap': 'cargo install --path adapter',
  'ax-lsp': 'cargo install --path server',
};

const PACKAGE: Record<Binary, string> = { ax: 'ax-cli', 'ax-dap': 'ax-dap', 'ax-lsp': 'ax-lsp' };

/** A value of a path setting and the scope it is set in, as VS Code names it ("Workspace settings"). */
export interface SettingValue {
  scope: string;
  value: string;
}

export interface Lookup {
  /** The setting's value (empty or undefined: not set); shorthand for one unnamed scope in `settings`. */
  setting?: string;
  /** The setting's values in the scopes VS Code applies here, narrowest first. `~` and `${workspaceFolder}` are expanded. */
  settings?: readonly SettingValue[];
  /** A value set in a scope VS Code does not apply in this window (User settings, in a remote window). */
  ignored?: SettingValue;
  /** The remote's name (`vscode.env.remoteName`) in a remote window. */
  remote?: string;
  workspaceFolders: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  isFile: (p: string) => boolean;
  platform?: NodeJS.Platform;
  home?: string;
}

export type Found = { path: string; from: 'setting' | 'workspace' | 'PATH' | 'cargo'; note?: string } | { error: string };

export function findBinary(name: Binary, lookup: Lookup): Found {
  const windows = (lookup.platform ?? process.platform) === 'win32';
  const home = lookup.home ?? os.homedir();
  const file = windows ? `${name}.exe` : name;
  const settings = [...(lookup.settings ?? []), ...(lookup.setting === undefined ? [] : [{ scope: '', value: lookup.setting }])]
    .map(({ scope, value }) => ({ scope, value: value.trim() }))
    .filter(({ value }) => value !== '');
  const folder = lookup.workspaceFolders[0];
  const wrong: string[] = [];
  for (const { scope, value } of settings) {
    const expanded = expand(value, home, folder);
    if (lookup.isFile(expanded)) {
      if (wrong.length === 0) return { path: expanded, from: 'setting' };
      return { path: expanded, from: 'setting', note: `ax: ${wrong.join(', ')}, which is not a file; using "${value}" from ${scope}.` };
    }
    wrong.push(`${SETTING[name]} is "${value}"${scope ? ` in ${scope}` : ''}`);
  }
  if (wrong.length > 0) {
    return { error: `ax: ${wrong.join(', ')}, which is not a file; expected the path of the ${name} binary (or leave the setting empty to look it up)` };
  }
  const ignored = lookup.ignored?.value.trim() ? lookup.ignored : undefined;
  const scopeHere = lookup.remote !== undefined ? 'Remote settings ("Preferences: Open Remote Settings")' : 'workspace settings';
  const why = `${SETTING[name]} is machine-overridable, so VS Code does not apply its ${ignored?.scope ?? 'User settings'} value in a remote window`;
  if (ignored !== undefined) {
    const expanded = expand(ignored.value, home, folder);
    const note = `ax: ${SETTING[name]} is "${ignored.value}" in ${ignored.scope}, but ${why}; set it in ${scopeHere} instead.`;
    if (lookup.isFile(expanded)) return { path: expanded, from: 'setting', note: `${note} Using it for now, since ${expanded} is a file here.` };
    const found = findBinary(name, { ...lookup, ignored: undefined });
    if ('path' in found) return { ...found, note: `${note} It is not a file here; using ${found.path} (${found.from}).` };
    return { error: `${note} (It is not a file here either.) ${found.error}` };
  }
  const targets = lookup.workspaceFolders.map((f) => path.join(f, 'target'));
  if (lookup.env.CARGO_TARGET_DIR) targets.unshift(path.resolve(lookup.workspaceFolders[0] ?? '.', lookup.env.CARGO_TARGET_DIR));
  for (const target of targets) {
    for (const profile of ['debug', 'release']) {
      const candidate = path.join(target, profile, file);
      if (lookup.isFile(candidate)) return { path: candidate, from: 'workspace' };
    }
  }
  for (const dir of (lookup.env.PATH ?? '').split(windows ? ';' : ':')) {
    if (dir === '') continue;
    const candidate = path.join(dir, file);
    if (lookup.isFile(candidate)) return { path: candidate, from: 'PATH' };
  }
  const cargoBin = path.join(lookup.env.CARGO_HOME ?? path.join(home, '.cargo'), 'bin', file);
  if (lookup.isFile(cargoBin)) return { path: cargoBin, from: 'cargo' };
  const remoteHint =
    lookup.remote !== undefined
      ? ` This is a remote window (${lookup.remote}): ${why}; set it in ${scopeHere} or the workspace settings.`
      : '';
  return {
    error:
      `ax: cannot find ${name}: not in the workspace's target/debug or target/release, on PATH, or in ${path.dirname(cargoBin)}. ` +
      `Install it from an ax checkout with \`${INSTALL[name]}\` (or build it there with \`cargo build -p ${PACKAGE[name]}\`), ` +
      `or set ${SETTING[name]} to its path.${remoteHint}`,
  };
}

function expand(setting: string, home: string, folder: string | undefined): string {
  let p = setting;
  if (p === '~' || p.startsWith('~/')) p = path.join(home, p.slice(1));
  if (folder !== undefined) p = p.replace(/\$\{workspaceFolder\}/g, folder);
  return path.isAbsolute(p) || folder === undefined ? p : path.join(folder, p);
}
