/**
 * The explicit list of detectors. No registration by import side effect: a
 * detector runs because it is named here.
 */
import type { Detector } from '../core/types.js';
import { createDiskDetector, type DiskOptions } from './disk.js';
import { createHostMemoryDetector, type HostMemoryOptions } from './host-memory.js';

/** Options of every detector, as the `detectors` section of the config holds them. */
export interface DetectorOptions {
  disk?: Partial<DiskOptions>;
  hostMemory?: Partial<HostMemoryOptions>;
}

/** Builds every detector with its options. */
export function createDetectors(opts: DetectorOptions = {}): Detector[] {
  return [createDiskDetector(opts.disk), createHostMemoryDetector(opts.hostMemory)];
}
