//! The flame graph page: inferno's SVG inlined without its XML prologue,
//! names escaped, anything but an SVG refused with the file named.

import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { escapeHtml, flamegraphHtml } from '../src/logic/flamegraph';

const svg = '<?xml version="1.0" standalone="no"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd"><svg version="1.1" onload="init(evt)"><script type="text/ecmascript"><![CDATA[function init(evt) {}]]></script></svg>';

test('the SVG is inlined without its prologue, under a strict content security policy', () => {
  const html = flamegraphHtml(svg, '/ws/a&b/.ax/profile.json', '/tmp/f.svg');
  assert.match(html, /^<!DOCTYPE html>/);
  assert.doesNotMatch(html, /<\?xml|<!DOCTYPE svg/);
  assert.match(html, /<\/div>\n<svg version="1.1" onload="init\(evt\)">/);
  assert.match(html, /content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"/);
  assert.match(html, /\/ws\/a&amp;b\/\.ax\/profile\.json/);
  assert.match(html, /postMessage\(&quot;open&quot;\)/);
});

test('anything but an SVG is refused, naming the file', () => {
  assert.throws(() => flamegraphHtml('error: no stacks', 'p', '/tmp/f.svg'), /^Error: \/tmp\/f\.svg: not an SVG \(it starts with "error: no stacks"\); expected the output of ax perf flamegraph$/);
});

test('escaping', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});
