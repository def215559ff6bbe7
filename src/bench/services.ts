// The synthetic service set every mode of the bench programs: N ClusterIP services, each one TCP
// port with E endpoints, laid out so every address is unique and the last service is the one the
// client connects to (last added: the worst case for a linear rule list).
//
//   service i   VIP 10.96.0.0 + 1 + i (service CIDR 10.96.0.0/12), port 80/tcp,
//               name svc-<i> in namespace bench, port name http
//   endpoints   10.128.0.0 + 1 + i*E + k, port 8080 (all local to the backend namespace, which
//               routes 10.128.0.0/12 to its loopback: one listener answers every endpoint)
//   cluster     pods are 10.128.0.0/9: the client (10.255.0.2) is a pod, so kube-proxy's
//               "! -s <cluster CIDR> -j KUBE-MARK-MASQ" is evaluated but does not masquerade
import { formatIpv4, parseIpv4 } from '../datapath/ip.js';

export const SERVICE_CIDR = '10.96.0.0/12';
export const CLUSTER_CIDR = '10.128.0.0/9';
export const ENDPOINT_CIDR = '10.128.0.0/12';
export const SERVICE_PORT = 80;
export const ENDPOINT_PORT = 8080;
export const NAMESPACE = 'bench';

const SERVICE_BASE = parseIpv4('10.96.0.0')!;
const ENDPOINT_BASE = parseIpv4('10.128.0.0')!;
/** addresses in a /12, minus network and broadcast */
const SLASH12 = (1 << 20) - 2;

export interface BenchEndpoint {
  ip: string;
  port: number;
}

export interface BenchService {
  index: number;
  namespace: string;
  name: string;
  portName: string;
  vip: string;
  port: number;
  protocol: 'tcp';
  endpoints: BenchEndpoint[];
}

/** The largest number of services a set with `endpointsPer` endpoints each can have. */
export function maxServices(endpointsPer: number): number {
  return Math.min(SLASH12, Math.floor(SLASH12 / endpointsPer));
}

/** Service i of a set (the same whatever the set's size: adding one means appending it). */
export function benchService(index: number, endpointsPer: number): BenchService {
  const endpoints: BenchEndpoint[] = [];
  for (let k = 0; k < endpointsPer; k++) endpoints.push({ ip: formatIpv4(ENDPOINT_BASE + 1 + index * endpointsPer + k), port: ENDPOINT_PORT });
  return {
    index,
    namespace: NAMESPACE,
    name: `svc-${index}`,
    portName: 'http',
    vip: formatIpv4(SERVICE_BASE + 1 + index),
    port: SERVICE_PORT,
    protocol: 'tcp',
    endpoints,
  };
}

/** Services 0..n-1. */
export function benchServices(n: number, endpointsPer: number): BenchService[] {
  if (n > maxServices(endpointsPer)) throw new Error(`${n} services with ${endpointsPer} endpoints each do not fit ${SERVICE_CIDR} / ${ENDPOINT_CIDR}`);
  return Array.from({ length: n }, (_, i) => benchService(i, endpointsPer));
}

/** kube-proxy's ServicePortName as it prints it: namespace/name:port */
export function servicePortName(s: BenchService): string {
  return `${s.namespace}/${s.name}:${s.portName}`;
}
