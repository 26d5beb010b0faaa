/**
 * The fixed words of the contract as plain arrays, without zod, for code that
 * only needs the lists (CLI flags, query parsers) and should not load the
 * schemas: contract.ts builds its enums from them.
 */

/** Severities, mildest first. */
export const SEVERITY_VALUES = ['info', 'warning', 'critical'] as const;

/** Every severity, mildest first. */
export const SEVERITIES: readonly (typeof SEVERITY_VALUES)[number][] = SEVERITY_VALUES;

/** Stable category ids of the problem catalog (DESIGN.md). */
export const CATEGORIES = [
  'CrashLoop',
  'OOMKilled',
  'ImagePull',
  'ContainerConfig',
  'ProbeFailure',
  'Evicted',
  'NodeNotReady',
  'NodeMemoryPressure',
  'NodeDiskPressure',
  'NodePIDPressure',
  'DiskFull',
  'InodeExhaustion',
  'KernelOOM',
  'KernelHungTask',
  'KernelSoftLockup',
  'FilesystemError',
  'NetworkLinkDown',
  'ConntrackFull',
  'GPUXid',
  'ThermalThrottle',
  'KubeletUnhealthy',
  'RuntimeUnhealthy',
  'ClockSkew',
  'CertificateExpiry',
  'DNSFailure',
  'LogErrorSpike',
  'ContainerFailed',
  'KernelOops',
  'HardwareError',
  'DiskFailure',
] as const;
