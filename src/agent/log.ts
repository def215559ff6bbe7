// The agent's log: one line per significant change, as text (`time level message key=value`) or as
// JSON (`--log-format json`, one object per line) for a log collector. Goes to stderr.

export type LogFormat = 'text' | 'json';
export type Level = 'info' | 'warn' | 'error';
export type Fields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  (level: Level, msg: string, fields?: Fields): void;
}

/** A logger writing to `out` (stderr by default). */
export function makeLogger(format: LogFormat, out: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Logger {
  return (level, msg, fields = {}) => {
    const time = new Date().toISOString();
    const defined = Object.entries(fields).filter(([, v]) => v !== undefined);
    if (format === 'json') out(JSON.stringify({ time, level, msg, ...Object.fromEntries(defined) }));
    else out(`${time} ${level} ${msg}${defined.map(([k, v]) => ` ${k}=${typeof v === 'string' && /[\s"=]/.test(v) ? JSON.stringify(v) : String(v)}`).join('')}`);
  };
}
