//! Reading a VS Code settings file, which is JSON with comments and trailing
//! commas (JSONC), without a dependency: comments outside strings and commas
//! before `}` or `]` are dropped, then `JSON.parse` does the rest. Used to
//! read a User settings file whose values VS Code does not apply in this
//! window (`binaries.ts`). Free of `vscode` imports.

/** The parsed value, or `undefined` when the text is not JSON even then. */
export function parseJsonc(text: string): unknown {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
    } else {
      out += c;
      i++;
    }
  }
  try {
    return JSON.parse(out.replace(/,(\s*[}\]])/g, '$1'));
  } catch {
    return undefined;
  }
}
