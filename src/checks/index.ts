// The check catalogue, in the order checks run (a check's `requires` must come before it).
import { kernelVersion } from './kernel-version.js';
import type { Check } from './types.js';

export const CHECKS: readonly Check[] = [kernelVersion];
