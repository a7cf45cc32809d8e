//! The page the flame graph webview shows: inferno's SVG inlined into HTML
//! (its own script keeps working: click to zoom, Ctrl+F to search), under a
//! content security policy that allows only inline styles and scripts, with a
//! link that asks the extension to open the file in the default viewer.
//! Free of `vscode` imports.

/** The webview's HTML for an SVG file's text; `openMessage` is posted when the user asks for the default viewer. */
export function flamegraphHtml(svg: string, source: string, file: string, openMessage = 'open'): string {
  const body = svg.replace(/^\s*<\?xml[^>]*\?>\s*/, '').replace(/^\s*<!DOCTYPE[^>]*>\s*/, '');
  if (!/^<svg[\s>]/.test(body)) {
    throw new Error(`${file}: not an SVG (it starts with ${JSON.stringify(body.slice(0, 20))}); expected the output of ax perf flamegraph`);
  }
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>body { background: white; color: black; margin: 0 } .bar { font: 12px sans-serif; padding: 4px 8px } svg { width: 100%; height: auto }</style>
</head><body>
<div class="bar">${escapeHtml(source)} · <a href="#" onclick="acquireVsCodeApi().postMessage(${escapeHtml(JSON.stringify(openMessage))}); return false">open ${escapeHtml(file)} in the default viewer</a></div>
${body}
</body></html>`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}
