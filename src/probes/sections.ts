// One remote command, several facts: a shell script prints `@@ name` before each part of its output,
// and parseSections splits it again. Checks that share a round-trip use this one format.

/** A line that starts a section: `@@ name`. */
const HEADER = /^@@ (.+)$/;

/** Split `@@ name`-headed output into name → text (lines joined, no trailing newline). Later duplicates win. */
export function parseSections(output: string): Map<string, string> {
  const sections = new Map<string, string>();
  let name: string | null = null;
  let lines: string[] = [];
  const flush = () => {
    if (name !== null) sections.set(name, lines.join('\n').replace(/\n+$/, ''));
  };
  for (const line of output.split('\n')) {
    const m = HEADER.exec(line);
    if (m) {
      flush();
      name = m[1]!.trim();
      lines = [];
    } else if (name !== null) {
      lines.push(line);
    }
  }
  flush();
  return sections;
}

/** The shell line that prints a section header. */
export function sectionHeader(name: string): string {
  return `echo '@@ ${name}'`;
}
