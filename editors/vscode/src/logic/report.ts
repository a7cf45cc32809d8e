//! The page the performance report webview shows: the HTML `ax perf report`
//! wrote, which is self-contained and carries its own content security policy
//! (no fetch; inline styles and scripts only), with one bar added at the top
//! whose link asks the extension to open the file in the default browser.
//! Free of `vscode` imports.

import { escapeHtml } from './flamegraph';

/** The webview's HTML for a report file's text; `openMessage` is posted when the user asks for the browser. */
export function reportHtml(html: string, file: string, openMessage = 'open'): string {
  if (!/^<!DOCTYPE html>/.test(html) || !html.includes('id="ax-report-data"')) {
    throw new Error(`${file}: not an ax performance report (it starts with ${JSON.stringify(html.slice(0, 20))}); expected the output of ax perf report --html`);
  }
  if (!html.includes("content=\"default-src 'none';")) {
    throw new Error(`${file}: the report has no content security policy forbidding fetches; expected one written by ax perf report --html`);
  }
  const bar = `<div style="font: 12px sans-serif; padding: 4px 20px">${escapeHtml(file)} · <a href="#" onclick="acquireVsCodeApi().postMessage(${escapeHtml(JSON.stringify(openMessage))}); return false">open in the default browser</a></div>\n`;
  return html.replace(/<body>\n?/, (body) => body + bar);
}
