//! The `ax` command lines behind the extension's commands, and the parsing of
//! what the user types for them. Free of `vscode` imports; `../commands.ts`
//! runs them.

/** One call: a method and its JSON input. */
export interface Call {
  method: string;
  input: unknown;
}

/** `ax run PLUGIN METHOD INPUT`, or `ax run --calls FILE PLUGIN`. */
export function runArgs(plugin: string, what: Call | { callsFile: string }): string[] {
  if ('callsFile' in what) return ['run', '--calls', what.callsFile, plugin];
  return ['run', plugin, what.method, JSON.stringify(what.input ?? null)];
}

/** `ax run --profile --calls FILE PLUGIN`, the `ax.profile` command of the interfaces. */
export function profileArgs(plugin: string, callsFile: string): string[] {
  return ['run', '--profile', '--calls', callsFile, plugin];
}

/** `ax perf compare --markdown BASE NEW`. */
export function compareArgs(base: string, next: string): string[] {
  return ['perf', 'compare', '--markdown', base, next];
}

/** `ax perf flamegraph PROFILE -o OUT`. */
export function flamegraphArgs(profile: string, out: string): string[] {
  return ['perf', 'flamegraph', profile, '-o', out];
}

/** `ax perf report PROFILE --html -o OUT`. */
export function reportArgs(profile: string, out: string): string[] {
  return ['perf', 'report', profile, '--html', '-o', out];
}

/**
 * A call as typed in the input box: `METHOD` or `METHOD JSON`, e.g.
 * `count {"text": "a b c"}`. Returns the call or a message naming what is wrong.
 */
export function parseCall(text: string): Call | { error: string } {
  const trimmed = text.trim();
  const match = /^(\S+)(?:\s+([\s\S]*))?$/.exec(trimmed);
  if (!match) return { error: 'expected a method name, then optionally its input as JSON: count {"text": "a b c"}' };
  const [, method, json] = match;
  if (method.startsWith('{') || method.startsWith('[') || method.startsWith('"')) {
    return { error: `"${method}" is not a method name; expected METHOD then its JSON input: count {"text": "a b c"}` };
  }
  if (json === undefined || json.trim() === '') return { method, input: null };
  try {
    return { method, input: JSON.parse(json) };
  } catch (e) {
    return { error: `the input of ${method} is not JSON (${(e as Error).message}): ${json}` };
  }
}

/** The result of `ax perf compare`, shown as a Markdown document. */
export function compareDocument(
  base: string,
  next: string,
  result: { code: number | null; stdout: string; stderr: string },
): { markdown: string; failed: boolean } {
  const header = `# ax perf compare\n\nbase: \`${base}\`  \nnew: \`${next}\`\n\n`;
  // Exit 1 with a table means "a benchmark is slower", exit 3 "inconclusive":
  // verdicts, not failures.
  const verdictOnly = result.code === 0 || ((result.code === 1 || result.code === 3) && result.stdout.trim() !== '');
  const stderr = result.stderr.trim();
  if (verdictOnly) {
    const note = stderr === '' ? '' : `\n> ${stderr.split('\n').join('\n> ')}\n`;
    return { markdown: header + result.stdout + note, failed: false };
  }
  return {
    markdown: `${header}The comparison failed (exit status ${result.code ?? 'signal'}):\n\n\`\`\`text\n${stderr || result.stdout}\n\`\`\`\n`,
    failed: true,
  };
}
