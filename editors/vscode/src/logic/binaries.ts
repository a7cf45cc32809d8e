//! Finding the `ax`, `ax-dap` and `ax-lsp` binaries: the user's setting, else
//! a build in the workspace (`target/debug`, then `target/release`, for people
//! working on ax itself or with it as a submodule), else `PATH`, else cargo's
//! bin directory (not on the `PATH` of a VS Code started from a desktop
//! launcher). When none is found, the message says how to get one. Free of
//! `vscode` imports: the file system is a parameter.

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

export interface Lookup {
  /** The setting's value (empty or undefined: not set). `~` and `${workspaceFolder}` are expanded. */
  setting?: string;
  workspaceFolders: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  isFile: (p: string) => boolean;
  platform?: NodeJS.Platform;
  home?: string;
}

export type Found = { path: string; from: 'setting' | 'workspace' | 'PATH' | 'cargo' } | { error: string };

export function findBinary(name: Binary, lookup: Lookup): Found {
  const windows = (lookup.platform ?? process.platform) === 'win32';
  const home = lookup.home ?? os.homedir();
  const file = windows ? `${name}.exe` : name;
  const setting = lookup.setting?.trim();
  if (setting) {
    const expanded = expand(setting, home, lookup.workspaceFolders[0]);
    if (lookup.isFile(expanded)) return { path: expanded, from: 'setting' };
    return { error: `ax: ${SETTING[name]} is "${setting}", which is not a file; expected the path of the ${name} binary (or leave the setting empty to look it up)` };
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
  return {
    error:
      `ax: cannot find ${name}: not in the workspace's target/debug or target/release, on PATH, or in ${path.dirname(cargoBin)}. ` +
      `Install it from an ax checkout with \`${INSTALL[name]}\` (or build it there with \`cargo build -p ${PACKAGE[name]}\`), ` +
      `or set ${SETTING[name]} to its path.`,
  };
}

function expand(setting: string, home: string, folder: string | undefined): string {
  let p = setting;
  if (p === '~' || p.startsWith('~/')) p = path.join(home, p.slice(1));
  if (folder !== undefined) p = p.replace(/\$\{workspaceFolder\}/g, folder);
  return path.isAbsolute(p) || folder === undefined ? p : path.join(folder, p);
}
