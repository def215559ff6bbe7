// The profile schema: one zod schema that also gives the TypeScript type. The profiles issue grows
// it (sysctls, modules, MTU, channels); unknown keys are rejected so a typo never goes unnoticed.
import { z } from 'zod';
import { coerceVersion } from '../checks/kernel-release.js';

const kernelVersion = z
  .string()
  .refine((v) => coerceVersion(v) !== null, { message: 'expected a kernel version such as "5.10" or "5.15.0"' });

export const ProfileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes'),
  description: z.string(),
  kernel: z.strictObject({
    /** Below this the node fails kernel.version. */
    min: kernelVersion,
    /** Below this kernel.version warns: newer datapath features are missing. */
    recommended: kernelVersion,
  }),
});

export type Profile = z.infer<typeof ProfileSchema>;
