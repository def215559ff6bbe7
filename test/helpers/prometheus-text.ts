// A strict parser of the Prometheus text exposition format 0.0.4 (what node_exporter's textfile
// collector and a scrape read), for tests: every line is a HELP, a TYPE or a sample; names and label
// names match the grammar; label values use only the three escapes; a family's TYPE comes before its
// samples and its samples are contiguous; no series appears twice; counters are non-negative.
// Throws with the line number on the first violation.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface MetricFamily {
  name: string;
  help?: string;
  type?: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string, where: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new Error(`${where}: bad sample value "${s}"`);
  return Number(s);
}

function parseLabels(s: string, where: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1; // after '{'
  for (;;) {
    if (s[i] === '}') return { labels, rest: s.slice(i + 1) };
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(s.slice(i));
    if (!m) throw new Error(`${where}: bad label at "${s.slice(i, i + 20)}"`);
    const name = m[1]!;
    if (!LABEL.test(name) || name.startsWith('__')) throw new Error(`${where}: bad label name ${name}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    i += m[0].length;
    let v = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === '\n') throw new Error(`${where}: raw newline in label value`);
      if (c === '\\') {
        const e = s[i + 1];
        if (e === '\\') v += '\\';
        else if (e === '"') v += '"';
        else if (e === 'n') v += '\n';
        else throw new Error(`${where}: bad escape \\${e ?? ''} in label value`);
        i += 2;
        continue;
      }
      v += c;
      i++;
    }
    labels[name] = v;
    i++; // closing quote
    if (s[i] === ',') i++;
    else if (s[i] !== '}') throw new Error(`${where}: expected , or } after a label`);
  }
}

/** Families by name. */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, MetricFamily>();
  const series = new Set<string>();
  const closed = new Set<string>();
  let current: string | undefined;
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, samples: [] }));
    return f;
  };
  text.split('\n').forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a comment
      const [, kw, name, rest] = m;
      if (!NAME.test(name!)) throw new Error(`${where}: bad metric name ${name}`);
      const f = family(name!);
      if (kw === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        if (rest!.replace(/\\[\\n]/g, '').includes('\\')) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest!;
      } else {
        if (f.type !== undefined) throw new Error(`${where}: second TYPE for ${name}`);
        if (f.samples.length > 0) throw new Error(`${where}: TYPE for ${name} after its samples`);
        if (!TYPES.has(rest!)) throw new Error(`${where}: bad type "${rest}"`);
        f.type = rest as MetricFamily['type'];
      }
      return;
    }
    const nm = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!nm) throw new Error(`${where}: not a sample: ${line}`);
    const name = nm[1]!;
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, where));
    const vm = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (!vm) throw new Error(`${where}: expected " value [timestamp]" after the name and labels, got "${rest}"`);
    const value = parseValue(vm[1]!, where);
    const f = family(name);
    if (f.type === undefined) throw new Error(`${where}: sample of ${name} before its TYPE`);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`);
    if (current !== name) {
      if (closed.has(name)) throw new Error(`${where}: samples of ${name} are not together`);
      if (current) closed.add(current);
      current = name;
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: series ${key} twice`);
    series.add(key);
    f.samples.push({ name, labels, value });
  });
  return families;
}
