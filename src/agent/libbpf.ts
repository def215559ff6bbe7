// libbpf.so.1 bound in-process with koffi: the handful of calls the agent's map writer needs. This is
// the only file that imports koffi. libbpf ≥ 1.0 returns -errno from these calls (no errno to read).
// Debian 12 ships libbpf 1.1 (package libbpf1), which has the batch calls (kernel ≥ 5.6 for hash maps).
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { ExitCode, PrepNodeError } from '../errors.js';
import { besideSea, seaDir } from '../sea.js';

type Fn = (...args: unknown[]) => number;

/** The libbpf and libc functions used, as plain functions over Buffers. */
export interface Libbpf {
  objGet(path: string): number;
  objGetInfoByFd(fd: number, info: Buffer, len: Buffer): number;
  update(fd: number, key: Buffer, value: Buffer, flags: number): number;
  del(fd: number, key: Buffer): number;
  lookup(fd: number, key: Buffer, value: Buffer): number;
  nextKey(fd: number, key: Buffer | null, next: Buffer): number;
  updateBatch(fd: number, keys: Buffer, values: Buffer, count: Buffer): number;
  close(fd: number): number;
}

let bound: Libbpf | undefined;

/** Load libbpf.so.1 once; a missing library is one line saying which package brings it. */
export function libbpf(): Libbpf {
  if (bound) return bound;
  // (in the single executable's CommonJS bundle import.meta.url is a stand-in: this require is not used there)
  const require = createRequire(import.meta.url);
  const koffi = seaDir() === null ? (require('koffi') as typeof import('koffi')) : seaKoffi();
  let lib: ReturnType<typeof import('koffi').load>;
  let libc: ReturnType<typeof import('koffi').load>;
  try {
    // beside the single executable: libelf first, so libbpf's DT_NEEDED finds it loaded by its soname
    if (seaDir() !== null) koffi.load(besideSea('libelf.so.1', ''));
    lib = koffi.load(seaDir() === null ? 'libbpf.so.1' : besideSea('libbpf.so.1', ''));
    libc = koffi.load('libc.so.6');
  } catch (err) {
    throw new PrepNodeError(`the agent cannot load libbpf.so.1 (${(err as Error).message.split('\n')[0]}): install it with \`apt-get install libbpf1\``, ExitCode.refused, { cause: err });
  }
  const f = (l: typeof lib, decl: string) => l.func(decl) as unknown as Fn;
  const objGet = f(lib, 'int bpf_obj_get(const char *pathname)');
  const info = f(lib, 'int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)');
  const update = f(lib, 'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)');
  const del = f(lib, 'int bpf_map_delete_elem(int fd, const void *key)');
  const lookup = f(lib, 'int bpf_map_lookup_elem(int fd, const void *key, void *value)');
  const next = f(lib, 'int bpf_map_get_next_key(int fd, const void *key, void *next_key)');
  const updBatch = f(lib, 'int bpf_map_update_batch(int fd, const void *keys, const void *values, void *count, const void *opts)');
  const close = f(libc, 'int close(int fd)');
  bound = {
    objGet: (p) => objGet(p),
    objGetInfoByFd: (fd, i, l) => info(fd, i, l),
    update: (fd, k, v, fl) => update(fd, k, v, fl),
    del: (fd, k) => del(fd, k),
    lookup: (fd, k, v) => lookup(fd, k, v),
    nextKey: (fd, k, n) => next(fd, k, n),
    updateBatch: (fd, k, v, c) => updBatch(fd, k, v, c, null),
    close: (fd) => close(fd),
  };
  return bound;
}

/** Files beside the single executable the agent loads code from (`make sea` puts them there). */
const SEA_LIBS = ['koffi.node', 'libelf.so.1', 'libbpf.so.1'] as const;

/**
 * The agent runs as root: what it loads code from beside the single executable (koffi's native module,
 * libbpf and the libelf it needs) and their directory must be root's and writable by root only, or
 * another account could swap the code root is about to run.
 */
function checkSeaLibs(): void {
  const files = SEA_LIBS.map((n) => besideSea(n, n));
  for (const p of [dirname(files[0]!), ...files]) {
    const st = statSync(p);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw new PrepNodeError(`${p} is owned by uid ${st.uid} with mode ${(st.mode & 0o7777).toString(8)}: the agent loads code from there as root, so it must be root's and writable by root only (chown root ${p}; chmod go-w ${p})`, ExitCode.refused);
    }
  }
}

/** koffi's native module beside the single executable (a SEA's require takes built-in modules only). */
function seaKoffi(): typeof import('koffi') {
  checkSeaLibs();
  const mod = { exports: {} as typeof import('koffi') };
  process.dlopen(mod, besideSea('koffi.node', ''));
  return mod.exports;
}

/** What the kernel says about a map (struct bpf_map_info, include/uapi/linux/bpf.h). */
export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  name: string;
}

/** Read a map's info: the first fields of struct bpf_map_info (type, id, key_size, value_size, max_entries, map_flags, name[16]). */
export function mapInfo(lib: Libbpf, fd: number): number | MapInfo {
  const buf = Buffer.alloc(256);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(buf.length);
  const rc = lib.objGetInfoByFd(fd, buf, len);
  if (rc < 0) return rc;
  const nameBytes = buf.subarray(24, 40);
  const nul = nameBytes.indexOf(0);
  return {
    type: buf.readUInt32LE(0),
    id: buf.readUInt32LE(4),
    keySize: buf.readUInt32LE(8),
    valueSize: buf.readUInt32LE(12),
    maxEntries: buf.readUInt32LE(16),
    name: nameBytes.subarray(0, nul < 0 ? 16 : nul).toString('latin1'),
  };
}

/** errno names for messages (the ones these calls return). */
const ERRNO: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 7: 'E2BIG', 9: 'EBADF', 12: 'ENOMEM', 13: 'EACCES', 22: 'EINVAL', 28: 'ENOSPC', 95: 'EOPNOTSUPP', 524: 'ENOTSUPP' };
export const errnoName = (rc: number): string => ERRNO[-rc] ?? `errno ${-rc}`;

export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_LPM_TRIE = 11;
