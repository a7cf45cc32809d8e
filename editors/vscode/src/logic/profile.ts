//! The last profile of a plugin, for the status bar: where `ax run --profile`
//! writes it (`.ax/profile.json` in the crate, beside a bare library) and how
//! old it is, from its `taken_at` (docs/profile-format.md) or, when the file
//! cannot be read as a profile, its modification time. Free of `vscode` imports.

import * as path from 'node:path';

/** Where the profile of a plugin (crate directory, manifest or library) is written. */
export function profilePath(plugin: string, kind: 'dir' | 'file'): string {
  const dir = kind === 'dir' ? plugin : path.dirname(plugin);
  return path.join(dir, '.ax', 'profile.json');
}

/** An age in words, as short as a status bar wants: `just now`, `42 s ago`, `5 min ago`, `3 h ago`, `2 days ago`. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return 'at an unknown time';
  if (ms < 0) return 'in the future (clock skew?)';
  const s = Math.floor(ms / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ago`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ago`;
  const days = Math.floor(h / 24);
  return `${days} days ago`;
}

export interface ProfileStatus {
  /** The status bar text. */
  text: string;
  /** The hover text: what, when, by which command. */
  tooltip: string;
}

/**
 * The status of a plugin's profile from the file's text and modification
 * time (`undefined` when there is no file).
 */
export function profileStatus(
  plugin: string,
  file: { text: string; mtimeMs: number } | undefined,
  now: number,
): ProfileStatus {
  const name = path.basename(plugin);
  if (file === undefined) {
    return { text: `$(flame) ${name}: no profile`, tooltip: `No profile of ${plugin} yet: click to profile it (ax run --profile)` };
  }
  let takenAt: number | undefined;
  let detail = '';
  try {
    const profile = JSON.parse(file.text) as { format?: unknown; taken_at?: unknown; command?: unknown; runs?: unknown };
    if (profile.format === 'ax-profile' && typeof profile.taken_at === 'string') {
      const t = Date.parse(profile.taken_at);
      if (!Number.isNaN(t)) takenAt = t;
      detail = `\n${profile.runs ?? 1} run(s), last taken ${profile.taken_at}${typeof profile.command === 'string' ? `\nby: ${profile.command}` : ''}`;
    }
  } catch {
    // Not JSON (yet, or any more): fall back to the file's time.
  }
  const age = formatAge(now - (takenAt ?? file.mtimeMs));
  const source = takenAt === undefined ? ' (file time; not readable as an ax profile)' : '';
  return {
    text: `$(flame) ${name}: profiled ${age}`,
    tooltip: `Profile of ${plugin}: ${age}${source}${detail}\nClick to profile again`,
  };
}
