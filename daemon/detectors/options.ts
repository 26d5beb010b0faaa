/**
 * Building blocks of the detectors' option schemas. Each message is the
 * "what is allowed" part of a config error, so it is written for an operator.
 */
import { z } from 'zod';
import type { Detector } from '../core/types.js';

/** A number from min to max; `what` names the unit in the error message. */
export function range(min: number, max: number, what: string): z.ZodNumber {
  const error = `${what} from ${min} to ${max}`;
  return z.number({ error }).min(min, { error }).max(max, { error });
}

/** A percentage, 0 to 100. */
export const percent = range(0, 100, 'a percent');

/** A number of minutes, 0 to one week. */
export const minutes = range(0, 10_080, 'a number of minutes');

/** A number of hours, 0 to one year. */
export const hours = range(0, 8_760, 'a number of hours');

/** An integer from min to max. */
export function int(min: number, max: number): z.ZodNumber {
  const error = `an integer from ${min} to ${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/** A list of non-empty strings; `what` names the items. */
export function names(what: string): z.ZodArray<z.ZodString> {
  const error = `a list of ${what}`;
  return z.array(z.string({ error }).min(1, { error }), { error });
}

/**
 * Pairs of thresholds that must stay ordered once merged with the defaults:
 * `[lower, higher]`, e.g. a warning percent at most the critical one.
 */
export type Ordered<T> = readonly (readonly [keyof T & string, keyof T & string])[];

/** A detector's options in one place: defaults, config schema and threshold order. */
export interface DetectorOptionsSpec<T extends object> {
  /** Schema of the detector's `detectors.<key>` section: every key optional, strict, so a mistyped key is an error. */
  readonly schema: z.ZodType<Partial<T>>;
  /** The defaults, frozen. */
  readonly defaults: Readonly<T>;
  /** Thresholds that must stay ordered once merged with the defaults, lower first. Defaults to none. */
  readonly ordered: Ordered<T>;
}

/**
 * Declares a detector's options: `shape` checks each key and carries its doc
 * comment (the options type is derived from it, see OptionsOf), `defaults`
 * fill what the config leaves out.
 */
export function defineDetectorOptions<S extends z.core.$ZodShape>(
  shape: S,
  defaults: z.output<z.ZodObject<S>>,
  ordered: Ordered<z.output<z.ZodObject<S>>> = [],
): DetectorOptionsSpec<z.output<z.ZodObject<S>>> {
  const schema = z.object(shape).strict().partial() as unknown as z.ZodType<Partial<z.output<z.ZodObject<S>>>>;
  return Object.freeze({ schema, defaults: Object.freeze({ ...defaults }), ordered });
}

/** The options type a DetectorOptionsSpec declares, with the docs of its shape's keys. */
export type OptionsOf<Spec> = Spec extends DetectorOptionsSpec<infer T> ? T : never;

/**
 * A detector factory: the options given over the defaults, then `build` makes
 * the detect function once, so per-cycle work stays in `detect`.
 */
export function detectorFactory<T extends object>(
  name: string,
  spec: DetectorOptionsSpec<T>,
  build: (o: Readonly<T>) => Detector['detect'],
): (opts?: Partial<T>) => Detector {
  return (opts = {}) => ({ name, detect: build(Object.freeze({ ...spec.defaults, ...opts })) });
}
