// Recorded (or format-faithful) command outputs for check tests, under test/fixtures/checks/<check id>/.
// Each file's first line says where it came from (`# fixture: recorded ...` or `# fixture: written
// from the format, not recorded ...`); that line is not part of the output and is dropped here.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('../../../test/fixtures/checks/', import.meta.url));

/** The output stored in test/fixtures/checks/<check>/<name>.txt, without its provenance line. */
export function checkFixture(check: string, name: string): string {
  const text = readFileSync(`${DIR}${check}/${name}.txt`, 'utf8');
  return text.replace(/^# fixture: .*\n/, '');
}
