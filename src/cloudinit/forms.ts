// What cloud-init must put on a new node, tuner by tuner, taken from the tuners themselves: each
// tuner's persistent files (the same FileWrite apply writes) and its boot commands (the running
// values, set once on the first boot because systemd read sysctl.d, modules-load.d and the units
// before cloud-init wrote them). Never a second copy of a tuner's knowledge.
import type { Profile } from '../profiles/schema.js';
import { bpffsBootCommands, bpffsFiles } from '../tuners/bpffs.js';
import { channelsBootCommands, channelsFiles } from '../tuners/channels.js';
import { TUNERS } from '../tuners/index.js';
import { modulesBootCommands, modulesFile } from '../tuners/modules.js';
import { mtuBootCommands, mtuBootFiles } from '../tuners/mtu.js';
import { sysctlBootCommands, sysctlFile } from '../tuners/sysctl.js';
import type { FileWrite, TunerId } from '../tuners/types.js';

/** One tuner's share of the cloud-config document. */
export interface TunerForms {
  tuner: TunerId;
  /** Persistent forms: files (write_files) and symlinks (made by a command, write_files cannot). */
  files: FileWrite[];
  /** Run once on the first boot after the files exist, in this order (a tuner's own reload included). */
  commands: string[];
}

/** Every tuner's forms for a profile, in the order the tuners run (modules, sysctl, bpffs, mtu, channels). */
export function tunerForms(profile: Profile): TunerForms[] {
  const forms: TunerForms[] = [
    // The tuner writes no modules-load.d file for a profile without modules.
    { tuner: 'modules', files: profile.modules.length > 0 ? [modulesFile(profile)] : [], commands: modulesBootCommands(profile) },
    { tuner: 'sysctl', files: [sysctlFile(profile)], commands: sysctlBootCommands(profile) },
    { tuner: 'bpffs', files: bpffsFiles(profile), commands: bpffsBootCommands(profile) },
    { tuner: 'mtu', files: mtuBootFiles(profile), commands: mtuBootCommands(profile) },
    { tuner: 'channels', files: channelsFiles(profile), commands: channelsBootCommands(profile) },
  ];
  const order = TUNERS.map((t) => t.id);
  return forms.sort((a, b) => rank(order, a.tuner) - rank(order, b.tuner));
}

function rank(order: TunerId[], id: TunerId): number {
  const n = order.indexOf(id);
  return n < 0 ? order.length : n;
}
