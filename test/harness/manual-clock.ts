/**
 * The manual clock of the tests: the daemon's own (core/runtime/clock.ts), so
 * sources, exporters and tests share one notion of time.
 */
export { ManualClock } from '../../daemon/core/runtime/clock.js';
