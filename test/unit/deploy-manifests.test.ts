// deploy/: every manifest validated against the Kubernetes OpenAPI schemas (kubernetes-models: the
// validators generated from Kubernetes 1.27's OpenAPI document), then the rules the schema cannot
// express: API-server validation the DaemonSet would otherwise trip, RBAC that covers exactly what
// the agent lists and watches, and a probe that reaches the address the agent listens on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { DaemonSet, type IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ServiceAccount, type IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { ClusterRole, type IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding, type IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { resourceOf } from '../../src/agent/informers.js';

const DIR = fileURLToPath(new URL('../../../deploy/', import.meta.url));
/** A manifest as parsed: only apiVersion and kind are known until its schema has validated it. */
type Obj = { apiVersion?: string; kind?: string } & Record<string, unknown>;
interface Kinds { DaemonSet: IDaemonSet; ServiceAccount: IServiceAccount; ClusterRole: IClusterRole; ClusterRoleBinding: IClusterRoleBinding }

// The model's constructor copies the object; validate() runs the schema's generated validator and
// throws with every violation's JSON path.
const MODELS: Record<string, (data: Obj) => { validate(): void }> = {
  'apps/v1/DaemonSet': (d) => new DaemonSet(d as unknown as IDaemonSet),
  'v1/ServiceAccount': (d) => new ServiceAccount(d as unknown as IServiceAccount),
  'rbac.authorization.k8s.io/v1/ClusterRole': (d) => new ClusterRole(d as unknown as IClusterRole),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': (d) => new ClusterRoleBinding(d as unknown as IClusterRoleBinding),
};

function manifests(): { file: string; obj: Obj }[] {
  const out: { file: string; obj: Obj }[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(DIR + file, 'utf8'))) {
      assert.deepEqual(doc.errors, [], file);
      out.push({ file, obj: doc.toJS() as Obj });
    }
  }
  return out;
}

function validate(obj: Obj): void {
  const model = MODELS[`${obj.apiVersion ?? ''}/${obj.kind ?? ''}`];
  if (!model) assert.fail(`no schema for ${obj.apiVersion ?? '(no apiVersion)'} ${obj.kind ?? '(no kind)'}`);
  model(obj).validate();
}

/** The one manifest of a kind, as its schema's type (every test below first needs it to validate). */
function one<K extends keyof Kinds>(kind: K): Kinds[K] {
  const found = manifests().filter((m) => m.obj.kind === kind);
  assert.equal(found.length, 1, kind);
  return structuredClone(found[0]!.obj) as unknown as Kinds[K];
}
const podOf = (ds: IDaemonSet): IPodSpec => ds.spec!.template.spec!;
const agentOf = (ds: IDaemonSet): IContainer => podOf(ds).containers[0]!;
const asObj = (x: object): Obj => x as Obj;

test('every manifest in deploy/ validates against the OpenAPI schema of its kind', () => {
  const all = manifests();
  assert.deepEqual(all.map((m) => m.obj.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'ServiceAccount']);
  for (const { file, obj } of all) assert.doesNotThrow(() => validate(obj), file);
});

test('the validator is not a formality: a wrong type, a bad enum and a missing field are refused', () => {
  const ds = one('DaemonSet');
  Object.assign(agentOf(ds).ports![0]!, { containerPort: '10260' });
  assert.throws(() => validate(asObj(ds)), /containerPort must be integer/);
  const ds2 = one('DaemonSet');
  Object.assign(agentOf(ds2).volumeMounts![0]!, { mountPropagation: 'Shared' });
  assert.throws(() => validate(asObj(ds2)), /mountPropagation/);
  const ds3 = one('DaemonSet');
  delete (ds3.spec as Partial<NonNullable<IDaemonSet['spec']>>).selector;
  assert.throws(() => validate(asObj(ds3)), /selector/);
  const crb = one('ClusterRoleBinding');
  delete (crb.roleRef as Partial<IClusterRoleBinding['roleRef']>).kind;
  assert.throws(() => validate(asObj(crb)), /kind/);
});

// kube-proxy's rules: the bootstrap ClusterRole system:node-proxier as kubernetes' bootstrap policy
// writes it (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/cluster-roles.yaml).
const NODE_PROXIER = [
  { apiGroups: [''], resources: ['endpoints', 'services'], verbs: ['list', 'watch'] },
  { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch', 'update'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
];

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
/** Every (group, resource, verb) a set of rules grants. */
const grants = (rules: Rule[]): Set<string> =>
  new Set(rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${res}${g ? `.${g}` : ''} ${v}`)))));

test("the ClusterRole is system:node-proxier's rules plus list and watch on what the agent follows, nothing else", () => {
  const role = one('ClusterRole');
  const have = grants(role.rules as Rule[]);
  for (const g of grants(NODE_PROXIER)) assert.ok(have.has(g), `missing kube-proxy's ${g}`);
  // What src/agent/informers.ts lists and watches, in RBAC's spelling.
  const followed = (['Namespace', 'Node', 'Pod', 'Service', 'EndpointSlice', 'NetworkPolicy', 'CiliumNetworkPolicy'] as const).map(resourceOf);
  for (const res of followed) for (const verb of ['list', 'watch']) assert.ok(have.has(`${res} ${verb}`), `the agent lists and watches ${res}`);
  const expected = new Set([...grants(NODE_PROXIER), ...followed.flatMap((r) => [`${r} list`, `${r} watch`])]);
  assert.deepEqual([...have].filter((g) => !expected.has(g)), [], 'granted beyond the minimum');
  for (const r of role.rules as Rule[]) {
    assert.ok(!r.verbs.includes('*') && !r.resources.includes('*') && !r.apiGroups.includes('*'), 'no wildcards');
  }
});

test('the binding gives that ClusterRole to the service account the DaemonSet runs as', () => {
  const sa = one('ServiceAccount');
  const crb = one('ClusterRoleBinding');
  const ds = one('DaemonSet');
  assert.equal(crb.roleRef.name, one('ClusterRole').metadata?.name);
  assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: sa.metadata?.name, namespace: sa.metadata?.namespace }]);
  assert.equal(podOf(ds).serviceAccountName, sa.metadata?.name);
  assert.equal(ds.metadata?.namespace, sa.metadata?.namespace);
});

test('the DaemonSet: hostNetwork, node-critical, every taint tolerated, selector matching its pods', () => {
  const ds = one('DaemonSet');
  const pod = podOf(ds);
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, 'Default', "the node's resolver: cluster DNS sits behind a ClusterIP this agent serves");
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  const labels = ds.spec!.template.metadata?.labels ?? {};
  const wanted = Object.entries(ds.spec!.selector.matchLabels ?? {});
  assert.ok(wanted.length > 0);
  for (const [k, v] of wanted) assert.equal(labels[k], v);
});

test('the readiness probe reaches /readyz where the agent listens: the node IP, not its default 127.0.0.1', () => {
  const c = agentOf(one('DaemonSet'));
  const listen = c.args?.find((a) => a.startsWith('--listen='));
  assert.equal(listen, '--listen=$(HOST_IP):10260');
  assert.deepEqual(c.env?.find((e) => e.name === 'HOST_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.hostIP' } });
  assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 10260 }, 'no host: the kubelet probes the pod IP, the node IP under hostNetwork');
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
  assert.equal(c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
  // Without kube-proxy the kubernetes Service's ClusterIP is served by this agent: it must reach
  // the API server by its own address, which the operator sets.
  assert.ok(c.env?.some((e) => e.name === 'KUBERNETES_SERVICE_HOST' && e.value !== undefined));
  assert.ok(c.env?.some((e) => e.name === 'KUBERNETES_SERVICE_PORT' && /^\d+$/.test(e.value ?? '')));
});

test('capabilities are exactly those the datapath needs, and the API server would accept the security context', () => {
  const ds = one('DaemonSet');
  const pod = podOf(ds);
  const sc = agentOf(ds).securityContext ?? {};
  assert.equal(sc.privileged, false);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['BPF', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_RESOURCE'] });
  // kubernetes pkg/apis/core/validation: "cannot set `allowPrivilegeEscalation` to false and
  // `capabilities.Add` CAP_SYS_ADMIN" (and likewise with privileged).
  assert.notEqual(sc.allowPrivilegeEscalation, false);
  // Bidirectional propagation is accepted only for privileged containers (same validation).
  const mounts = agentOf(ds).volumeMounts ?? [];
  for (const m of mounts) assert.notEqual(m.mountPropagation, 'Bidirectional', m.name);
  const byName = Object.fromEntries((pod.volumes ?? []).map((v) => [v.name, v.hostPath?.path]));
  const bpffs = mounts.find((m) => byName[m.name] === '/sys/fs/bpf');
  const cgroup = mounts.find((m) => byName[m.name] === '/sys/fs/cgroup');
  assert.equal(bpffs?.mountPath, '/sys/fs/bpf');
  assert.equal(bpffs?.mountPropagation, 'HostToContainer');
  assert.equal(cgroup?.mountPropagation, 'HostToContainer');
  assert.ok(agentOf(ds).args?.includes(`--cgroup=${cgroup?.mountPath ?? '(none)'}`), 'the agent attaches to the host cgroup root it mounts');
});
