//! The language server's restart policy: growing delays, a bound, and a
//! fresh count after a stable run or a restart the user asked for.

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { RestartPolicy } from '../src/logic/restart';

test('failures in a row wait 1, 2, 4, 8, 16 s, then give up', () => {
  const policy = new RestartPolicy();
  const delays = [1, 2, 3, 4, 5].map(() => policy.failed(0));
  assert.deepEqual(
    delays.map((d) => (d.kind === 'restart' ? [d.delayMs, d.attempt, d.of] : d.kind)),
    [[1000, 1, 5], [2000, 2, 5], [4000, 3, 5], [8000, 4, 5], [16000, 5, 5]],
  );
  assert.deepEqual(policy.failed(0), { kind: 'give-up', attempts: 5 });
});

test('a server that ran for a minute before failing starts the count again; a short run does not', () => {
  const policy = new RestartPolicy();
  policy.failed(0);
  policy.failed(1000);
  policy.started(2000);
  assert.equal((policy.failed(10_000) as { attempt: number }).attempt, 3, 'ran 8 s: still in a row');
  policy.started(20_000);
  assert.deepEqual(policy.failed(80_000), { kind: 'restart', delayMs: 1000, attempt: 1, of: 5 });
});

test('reset (a changed ax.lsp.path, a new plugin crate) gives back every attempt', () => {
  const policy = new RestartPolicy();
  for (let i = 0; i < 6; i++) policy.failed(0);
  policy.reset();
  assert.equal(policy.failed(0).kind, 'restart');
});
