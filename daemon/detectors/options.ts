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

/** A count (restarts, kills, probe failures, streams), 1 to a million. */
export const count = int(1, 1_000_000);

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

/** One option of a detector: the check of what the config sets, and the value used when it sets nothing. */
export interface Opt<S extends z.ZodType> {
  /** Checks the configured value; its error is the "what is allowed" part of the config error. */
  readonly schema: S;
  /** The default. */
  readonly value: z.output<S>;
}

/** An option's check and its default, declared together: `windowHours: opt(hours, 24)`. */
export function opt<S extends z.ZodType>(schema: S, value: z.output<S>): Opt<S> {
  return { schema, value };
}

/** The options type of `defineDetectorOptions` entries; mapped key by key, so each keeps its doc comment. */
export type OptionsFromEntries<E extends Record<string, Opt<z.ZodType>>> = { -readonly [K in keyof E]: z.output<E[K]['schema']> };

/**
 * Declares a detector's options, one entry per option carrying its check, its
 * default and its doc comment (the options type is derived from the entries,
 * see OptionsOf). The checks compose into the section's strict schema, the
 * defaults fill what the config leaves out.
 */
export function defineDetectorOptions<E extends Record<string, Opt<z.ZodType>>>(
  entries: E,
  ordered: Ordered<OptionsFromEntries<E>> = [],
): DetectorOptionsSpec<OptionsFromEntries<E>> {
  type T = OptionsFromEntries<E>;
  const pairs = Object.entries(entries);
  const shape = Object.fromEntries(pairs.map(([key, o]) => [key, o.schema]));
  const defaults = Object.fromEntries(pairs.map(([key, o]) => [key, o.value])) as T;
  const schema = z.object(shape).strict().partial() as unknown as z.ZodType<Partial<T>>;
  return Object.freeze({ schema, defaults: Object.freeze(defaults), ordered });
}

/** The options type a DetectorOptionsSpec declares, with the doc comments of its entries. */
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
