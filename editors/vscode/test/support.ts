//! What the tests share: where the repository, its cargo target directory and
//! the extension's package.json are. The tests run from `out/test/` (compiled
//! by `tsc -p .`), so paths are taken from the extension's root.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { Attributes } from '../src/logic/schema';

export const extensionRoot = path.resolve(__dirname, '..', '..');
export const repoRoot = path.resolve(extensionRoot, '..', '..');
export const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
  : path.join(repoRoot, 'target');

/** A binary or library built by cargo (`./scripts/test` builds the workspace first). */
export function built(name: string): string {
  const file = path.join(targetDir, 'debug', name);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} does not exist; build the workspace first (cargo build --workspace), as ./scripts/test does`);
  }
  return file;
}

export interface PackageJson {
  activationEvents: string[];
  main: string;
  contributes: {
    commands: { command: string }[];
    configuration: { properties: Record<string, { type: string; default: unknown; enum?: unknown[]; items?: { enum?: unknown[] } }> };
    debuggers: {
      type: string;
      configurationAttributes: Attributes;
      initialConfigurations?: Record<string, unknown>[];
      configurationSnippets: { label: string; body: Record<string, unknown> }[];
    }[];
  };
}

export const packageJson: PackageJson = JSON.parse(fs.readFileSync(path.join(extensionRoot, 'package.json'), 'utf8'));
export const attributes: Attributes = packageJson.contributes.debuggers.find((d) => d.type === 'ax')!.configurationAttributes;
export const committedSchema: Attributes = JSON.parse(fs.readFileSync(path.join(extensionRoot, 'test', 'dap-schema.json'), 'utf8'));
