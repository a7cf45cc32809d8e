//! The language server's settings: VS Code's `ax.inlayHints.*` and
//! `ax.hotSpots` mapped onto the object `ax-lsp` takes as
//! `initializationOptions` and in `workspace/didChangeConfiguration`
//! (`{"settings": {"ax": …}}`), as agreed in the interfaces. Only those keys
//! go to the server: `ax.path` and the binary paths are the extension's own.
//! Values go as the user wrote them; the server warns about bad ones and
//! falls back to its defaults. Free of `vscode` imports.

export type Percentile = 'p50' | 'p90' | 'p95' | 'p99' | 'max';
export type Share = 'profile' | 'parent' | 'none';

export interface ServerSettings {
  inlayHints: { enabled: boolean; percentiles: Percentile[]; calls: boolean; share: Share };
  hotSpots: number;
}

/** The defaults, the same as the server's and as `package.json`'s (a test checks both). */
export const DEFAULTS: ServerSettings = {
  inlayHints: { enabled: true, percentiles: ['p50', 'p95'], calls: true, share: 'profile' },
  hotSpots: 5,
};

/** The VS Code settings (under `ax.`) that the server reads, each with the path of its value in `ServerSettings`. */
export const SERVER_KEYS = ['inlayHints.enabled', 'inlayHints.percentiles', 'inlayHints.calls', 'inlayHints.share', 'hotSpots'] as const;

/** The settings object for the server, from a reader of `ax.*` settings (`undefined` for an unset key). */
export function serverSettings(get: (key: (typeof SERVER_KEYS)[number]) => unknown): ServerSettings {
  const or = <T>(value: unknown, fallback: T): T => (value === undefined || value === null ? fallback : (value as T));
  return {
    inlayHints: {
      enabled: or(get('inlayHints.enabled'), DEFAULTS.inlayHints.enabled),
      percentiles: or(get('inlayHints.percentiles'), [...DEFAULTS.inlayHints.percentiles]),
      calls: or(get('inlayHints.calls'), DEFAULTS.inlayHints.calls),
      share: or(get('inlayHints.share'), DEFAULTS.inlayHints.share),
    },
    hotSpots: or(get('hotSpots'), DEFAULTS.hotSpots),
  };
}

/** The parameters of `workspace/didChangeConfiguration`. */
export function didChangeConfiguration(settings: ServerSettings): { settings: { ax: ServerSettings } } {
  return { settings: { ax: settings } };
}

/** Whether a configuration change concerns the server, given VS Code's `affectsConfiguration`. */
export function affectsServer(affects: (section: string) => boolean): boolean {
  return SERVER_KEYS.some((key) => affects(`ax.${key}`));
}
