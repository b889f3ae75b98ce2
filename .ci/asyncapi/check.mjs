// Validates an AsyncAPI document with @asyncapi/parser: the document itself,
// its $refs (relative ones resolved from the document's directory) and the
// schemas they reach. Prints every error diagnostic and exits 1 when there is
// one; otherwise prints how many warnings there were and exits 0.
//
// Usage: node check.mjs <asyncapi.yaml>
import path from 'node:path';
import process from 'node:process';
import parserModule from '@asyncapi/parser';

const { Parser, fromFile, DiagnosticSeverity } = parserModule;

const severityNames = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

function format(file, d) {
  // Spectral ranges are zero-based; editors count from one.
  const where = d.range ? `:${d.range.start.line + 1}:${d.range.start.character + 1}` : '';
  const at = d.path && d.path.length > 0 ? ` (at ${d.path.join('.')})` : '';
  const source = d.source ? path.relative(process.cwd(), d.source) : file;
  return `${source}${where}: ${severityNames[d.severity] ?? d.severity}: ${d.code}: ${d.message}${at}`;
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node check.mjs <asyncapi.yaml>');
    return 2;
  }
  const file = path.resolve(argv[0]);
  const shown = path.relative(process.cwd(), file) || file;
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, file).parse();

  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
  for (const d of errors) {
    console.error(format(shown, d));
  }
  if (errors.length > 0 || document === undefined) {
    console.error(`${shown}: ${errors.length} error(s), ${warnings.length} warning(s): not a valid AsyncAPI document`);
    return 1;
  }
  const version = document.version();
  console.log(`${shown}: valid AsyncAPI ${version} document, ${warnings.length} warning(s)`);
  for (const d of warnings) {
    console.log(format(shown, d));
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`check.mjs: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
