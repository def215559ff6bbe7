// Recorded (or format-faithful) command outputs for check tests, under test/fixtures/checks/.
// A file may open with provenance lines (`# fixture: recorded ...`, `# recorded ...`, `# written from
// the format, not recorded ...`); they are not part of the output and are dropped here. Other leading
// `#` lines (a kernel config's own header) are output and stay.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('../../../test/fixtures/checks/', import.meta.url));
const PROVENANCE = /^# (fixture:|recorded|written from the format)/;

/** The output stored at test/fixtures/checks/<path>, without its provenance lines. */
export function fixture(path: string): string {
  const lines = readFileSync(DIR + path, 'utf8').split('\n');
  while (lines.length > 0 && PROVENANCE.test(lines[0]!)) lines.shift();
  return lines.join('\n');
}

/** The profile test/fixtures/checks/hosts/ was recorded against: tests pin it rather than follow profiles/. */
export const RECORDED_PROFILE_YAML = fixture('hosts/profile.yaml');
