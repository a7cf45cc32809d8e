//! The commands the extension contributes and registers: one list, so a test
//! can check it against `package.json`. The language server's code lenses
//! carry the first three with their arguments (see the interfaces: `ax.run`
//! and `ax.profile` take `[pluginDir]`, `ax.openFlamegraph` `[profilePath]`).
//! Free of `vscode` imports.

export const COMMANDS = ['ax.run', 'ax.profile', 'ax.openFlamegraph', 'ax.compareBenchmarks', 'ax.openReport'] as const;
export type Command = (typeof COMMANDS)[number];
