// The fleet: targets from argv and/or an inventory file (YAML), each with optional user, port and profile.
import { z } from 'zod';
import { UsageError } from './errors.js';
import { parseTarget, type Target } from './host/target.js';
import { parseYamlSource, readTextFile } from './yaml-source.js';

/** An inventory's size limit: about 300,000 hosts written one `user@host:port` a line. */
const MAX_INVENTORY_BYTES = 16 * 1024 * 1024;

export interface HostSpec {
  target: Target;
  /** Profile name or path for this host, overriding --profile. */
  profile?: string;
}

const port = z.number().int().min(1).max(65535);
const entry = z.union([
  z.string(),
  z.strictObject({ host: z.string(), user: z.string().optional(), port: port.optional(), profile: z.string().optional() }),
]);
const InventorySchema = z.strictObject({
  defaults: z.strictObject({ user: z.string().optional(), port: port.optional(), profile: z.string().optional() }).optional(),
  hosts: z.array(entry).min(1, 'expected at least one host'),
});

/** Documented in the README: `hosts:` is a list of target strings or {host, user, port, profile}. */
export async function loadInventory(file: string): Promise<HostSpec[]> {
  return parseInventory(await readTextFile(file, `inventory ${file}`, MAX_INVENTORY_BYTES), file);
}

export function parseInventory(text: string, file: string): HostSpec[] {
  const parsed = InventorySchema.safeParse(parseYamlSource(text, file, MAX_INVENTORY_BYTES).value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new UsageError(`${file}: ${issues} (expected hosts: [ "user@host:port" | {host, user, port, profile} ])`);
  }
  const d = parsed.data.defaults ?? {};
  return parsed.data.hosts.map((h) => {
    const e = typeof h === 'string' ? { host: h } : h;
    const t = parseTarget(e.host);
    const user = t.user ?? e.user ?? d.user;
    const p = t.port ?? e.port ?? d.port;
    const profile = e.profile ?? d.profile;
    const target: Target = { ...t, ...(user && !t.local && { user }), ...(p && !t.local && { port: p }) };
    return { target, ...(profile && { profile }) };
  });
}
