//! When to restart the language server after it failed to start or exited:
//! after 1 s, then 2, 4, 8, 16 s, at most five times in a row; a server that
//! ran for a minute starts the count again. The user's own restart (a changed
//! `ax.lsp.path`, a new plugin crate) also starts it again. Free of `vscode`
//! imports, with the clock as a parameter, so plain node tests it.

export interface RestartPolicyOptions {
  firstDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
  /** A server that ran this long before failing counts as a fresh start. */
  stableMs: number;
}

export const DEFAULT_RESTART: RestartPolicyOptions = { firstDelayMs: 1000, maxDelayMs: 16000, maxAttempts: 5, stableMs: 60000 };

export type RestartDecision = { kind: 'restart'; delayMs: number; attempt: number; of: number } | { kind: 'give-up'; attempts: number };

export class RestartPolicy {
  private failures = 0;
  private startedAt: number | undefined;

  constructor(private readonly options: RestartPolicyOptions = DEFAULT_RESTART) {}

  /** The server is up (its initialize was answered) at `now`. */
  started(now: number): void {
    this.startedAt = now;
  }

  /** A start requested by the user or by a change in the workspace: the count starts again. */
  reset(): void {
    this.failures = 0;
    this.startedAt = undefined;
  }

  /** The server failed to start or exited at `now`: when to try again, if at all. */
  failed(now: number): RestartDecision {
    if (this.startedAt !== undefined && now - this.startedAt >= this.options.stableMs) this.failures = 0;
    this.startedAt = undefined;
    this.failures += 1;
    if (this.failures > this.options.maxAttempts) return { kind: 'give-up', attempts: this.options.maxAttempts };
    const delayMs = Math.min(this.options.firstDelayMs * 2 ** (this.failures - 1), this.options.maxDelayMs);
    return { kind: 'restart', delayMs, attempt: this.failures, of: this.options.maxAttempts };
  }
}
