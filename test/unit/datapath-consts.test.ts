// The TypeScript constants and struct sizes against the C headers they mirror: a change on either
// side without the other fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as C from '../../src/datapath/consts.js';
import * as enc from '../../src/datapath/encode.js';

const include = (f: string) => readFileSync(new URL(`../../../bpf/include/${f}`, import.meta.url), 'utf8');

/** #define NAME VALUE of a header with VALUE a number (0x.., trailing U) or (A << B) / (A * B). */
function defines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^#define ([A-Z][A-Z0-9_]+) ([^/\n]+?)\s*(\/\*.*)?$/gm)) {
    const expr = m[2]!.replace(/(0x[0-9a-fA-F]+|\d+)U\b/g, '$1');
    const num = /^(0x[0-9a-fA-F]+|\d+)$/.exec(expr);
    const op = /^\((\d+) (<<|\*) (\d+)\)$/.exec(expr);
    if (num) out.set(m[1]!, Number(num[1]));
    else if (op) out.set(m[1]!, op[2] === '<<' ? Number(op[1]) * 2 ** Number(op[3]) : Number(op[1]) * Number(op[3]));
  }
  return out;
}

const consts = defines(include('datapath_consts.h'));

test('every constant of datapath_consts.h the control plane uses has the same value in consts.ts', () => {
  const mirrored: Record<string, number> = {
    DROP_REASON_MAX: C.DROP_REASON_MAX,
    LB_MAGLEV_M: C.LB_MAGLEV_M,
    SVC_F_MAGLEV: C.SVC_F_MAGLEV,
    SVC_F_AFFINITY: C.SVC_F_AFFINITY,
    SVC_F_EXTERNAL: C.SVC_F_EXTERNAL,
    SVC_F_LOCAL_ONLY: C.SVC_F_LOCAL_ONLY,
    BE_F_REMOTE: C.BE_F_REMOTE,
    CT_F_SNAT: C.CT_F_SNAT,
    CT_F_FIB: C.CT_F_FIB,
    AFFINITY_CLIENT_IP: C.AFFINITY_CLIENT_IP,
    AFFINITY_CLIENT_NETNS: C.AFFINITY_CLIENT_NETNS,
    CT_F_DNAT: C.CT_F_DNAT,
    CT_F_REVNAT: C.CT_F_REVNAT,
    CT_F_REPLY: C.CT_F_REPLY,
    CT_F_TCP_ESTABLISHED: C.CT_F_TCP_ESTABLISHED,
    CT_F_TCP_CLOSING: C.CT_F_TCP_CLOSING,
    IDENTITY_ANY: C.IDENTITY_ANY,
    IDENTITY_HOST: C.IDENTITY_HOST,
    IDENTITY_WORLD: C.IDENTITY_WORLD,
    IDENTITY_WORLD_IPV6: C.IDENTITY_WORLD_IPV6,
    IDENTITY_USER_MIN: C.IDENTITY_USER_MIN,
    EP_F_ENFORCE_INGRESS: C.EP_F_ENFORCE_INGRESS,
    EP_F_ENFORCE_EGRESS: C.EP_F_ENFORCE_EGRESS,
    POLICY_INGRESS: C.POLICY_INGRESS,
    POLICY_EGRESS: C.POLICY_EGRESS,
    POLICY_ALLOW: C.POLICY_ALLOW,
    POLICY_DENY: C.POLICY_DENY,
    POLICY_PREFIX_ANY_PROTO: C.POLICY_PREFIX_ANY_PROTO,
    POLICY_PREFIX_ANY_PORT: C.POLICY_PREFIX_ANY_PORT,
    POLICY_PREFIX_FULL: C.POLICY_PREFIX_FULL,
    HOOK_TC: C.HOOK_TC,
    HOOK_SOCK_CONNECT: C.HOOK_SOCK_CONNECT,
    HOOK_SOCK_SENDMSG: C.HOOK_SOCK_SENDMSG,
    HOOK_TC6: C.HOOK_TC6,
    HOOK_SOCK_CONNECT6: C.HOOK_SOCK_CONNECT6,
    HOOK_SOCK_SENDMSG6: C.HOOK_SOCK_SENDMSG6,
    IPV6_MAX_EXTHDRS: C.IPV6_MAX_EXTHDRS,
    EVENT_VERDICT_DROPPED: C.EVENT_VERDICT_DROPPED,
    EVENT_VERDICT_FORWARDED: C.EVENT_VERDICT_FORWARDED,
    ...C.CAPACITY,
  };
  for (const [name, value] of Object.entries(mirrored)) assert.equal(value, consts.get(name), `${name}: consts.ts ${value}, header ${consts.get(name)}`);
  // and nothing the header defines in these families is missing from the mirror
  const families = /^(SVC_F_|BE_F_|AFFINITY_CLIENT_|CT_F_|IDENTITY_|EP_F_|POLICY_|HOOK_|LB_|CT6?_MAX|FRAG_MAX|ENDPOINTS6?_MAX|IPCACHE6?_MAX|IPV6_|EVENTS_|EVENT_VERDICT_)/;
  const missing = [...consts.keys()].filter((k) => families.test(k) && !(k in mirrored) && !k.endsWith('_H'));
  assert.deepEqual(missing, []);
});

test('LB_HASH_SEED matches lb_hash.h', () => {
  assert.equal(C.LB_HASH_SEED, defines(include('lb_hash.h')).get('LB_HASH_SEED'));
});

test('struct sizes: every _Static_assert of datapath_structs.h equals STRUCT_SIZE and what the encoders write', () => {
  const asserts = [...include('datapath_structs.h').matchAll(/_Static_assert\(sizeof\(struct (\w+)\) == (\d+)/g)].map((m) => [m[1]!, Number(m[2])] as const);
  assert.ok(asserts.length >= 14);
  const sizes: Record<string, number> = C.STRUCT_SIZE;
  for (const [name, size] of asserts) assert.equal(sizes[name], size, `struct ${name}`);
  const written: Record<string, number> = {
    lb_svc_key: enc.svcKey(1, 1, 6).length,
    lb_service: enc.serviceValue(1, 1, 0, 0).length,
    lb_backend_key: enc.backendKey(1, 0).length,
    lb_backend: enc.backendValue(1, 1, 1).length,
    node_cfg: enc.nodeCfgValue(1).length,
    policy_key: enc.policyKey(1, 2, 0, { proto: 6, port: 80, portBits: 16 }).length,
    policy_entry: enc.policyValue(1, 1).length,
  };
  for (const [name, size] of Object.entries(written)) assert.equal(size, asserts.find(([n]) => n === name)?.[1], `encoder of struct ${name}`);
  // structs without a _Static_assert: sizes from their fields (all naturally aligned, no padding)
  assert.equal(enc.endpointValue(1, 0).length, 8);
  assert.equal(enc.ipcacheKey(0, 0).length, 8);
  assert.equal(enc.ipcacheValue(1).length, 4);
  assert.equal(enc.maglevValue(new Uint16Array(C.LB_MAGLEV_M)).length, 2 * consts.get('LB_MAGLEV_M')!);
});

test('the maps the control plane writes are maps of bpf/lib/maps.h', () => {
  const maps = readFileSync(new URL('../../../bpf/lib/maps.h', import.meta.url), 'utf8');
  const names = [...maps.matchAll(/^\} (\w+) SEC\("\.maps"\);$/gm)].map((m) => m[1]);
  assert.deepEqual([...C.ALL_MAPS].sort(), [...names].sort());
});
