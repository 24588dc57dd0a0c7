#!/usr/bin/env node
// Builds the classic-script now.js from the ES module now.mjs (the one source), offline and
// dependency-free: the module's body is wrapped in a function, its single closing
// `export { ... };` becomes the NowJS object, and the script tail defines the globals (or
// module.exports under CommonJS). The node tests check that the committed now.js is this
// build of now.mjs:  node scripts/build-nowjs.mjs  rewrites it.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DIR = new URL('../src/nowgate/nowjs/', import.meta.url);
const EXPORT = /^export \{([^}]*)\};\n$/m;

export function buildClassic(moduleSource) {
  const found = moduleSource.match(EXPORT);
  if (!found || moduleSource.indexOf('export ', found.index + 1) >= 0) {
    throw new Error('now.mjs must end with its only export: export { ... };');
  }
  const headerEnd = moduleSource.indexOf('*/\n') + 3;
  const header = moduleSource.slice(0, headerEnd);
  const body = moduleSource.slice(headerEnd, found.index).trim();
  const members = found[1].split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    const [local, exported = local] = part.split(/\s+as\s+/);
    return `${exported}: ${local}`;
  });
  const indented = body.split('\n').map((line) => (line ? '  ' + line : line)).join('\n');
  return `${header}// GENERATED from now.mjs by scripts/build-nowjs.mjs: edit now.mjs, then rebuild.
(function (root) {
  'use strict';

${indented}

  var NowJS = { ${members.join(', ')} };
  if (typeof module === 'object' && module && module.exports) { module.exports = NowJS; return; }
  root.NowJS = NowJS;
  var script = typeof document !== 'undefined' ? document.currentScript : null;
  if (script && script.getAttribute('data-autoconnect') === 'false') return;
  if (typeof WebSocket === 'function' && typeof location !== 'undefined') {
    root.now = NowJS.connect({ url: (script && script.getAttribute('data-url')) || undefined });
  }
})(typeof globalThis !== 'undefined' ? globalThis : this);
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const source = readFileSync(new URL('now.mjs', DIR), 'utf8');
  writeFileSync(new URL('now.js', DIR), buildClassic(source));
}
