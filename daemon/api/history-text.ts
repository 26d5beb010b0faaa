/**
 * The `lines` of a metrics-history body, kept as JSON text between requests.
 * A host sample only ever changes the newest bucket of each series, yet a day
 * of 1-minute points for four filesystems is 5,700 points: building all of
 * them again after every sample held the event loop for 10–20 ms each time.
 * Here a new sample costs reading the newest bucket onwards and joining the
 * kept text; points that fall out of the window are dropped from the front.
 */
import type { SampleRow } from '../store/metrics-history.js';

/** What the text is read from. */
export interface SampleSource {
  /** Changes whenever a sample is added or samples are pruned. */
  readonly samplesGeneration: number;
  /** Changes whenever samples are pruned: kept text of older buckets may be gone. */
  readonly samplesPrunes: number;
  sampleRows(name: string, resolution: 60 | 900, fromBucket: number): SampleRow[];
}

/** How a series is shown. */
export interface LineStyle {
  /** The line's label for a stored label value (`''` for an unlabelled metric). */
  label: (labels: string) => string;
  /** Show 100 - mean for both mean and max (memory: stored as available, shown as used). */
  invert: boolean;
}

/** One line's points, in bucket order: the bucket starts and each point's JSON. */
interface Line {
  buckets: number[];
  parts: string[];
}

interface State {
  generation: number;
  firstBucket: number;
  /** Newest bucket read; it may still grow, so the next read starts there. */
  newest: number;
  lines: Map<string, Line>;
}

/** Most metric windows kept (each a metric at a resolution). */
const MAX_STATES = 16;

/** Kept text of metric windows, one per metric, resolution and style. */
export class HistoryText {
  readonly #states = new Map<string, State>();
  #prunes = 0;

  /** The JSON array of a metric's lines from `firstBucket` (Unix seconds) on, as the history route sends it. */
  lines(src: SampleSource, metric: string, resolution: 60 | 900, firstBucket: number, style: LineStyle): string {
    if (src.samplesPrunes !== this.#prunes) {
      this.#states.clear();
      this.#prunes = src.samplesPrunes;
    }
    const key = `${metric}\0${resolution}\0${style.invert}`;
    let st = this.#states.get(key);
    // A window reaching further back than the kept one is read whole; a later start drops points from the front.
    if (!st || firstBucket < st.firstBucket) {
      st = { generation: Number.NaN, firstBucket, newest: firstBucket, lines: new Map() };
      this.#states.delete(key);
      this.#states.set(key, st);
      if (this.#states.size > MAX_STATES) this.#states.delete(this.#states.keys().next().value as string);
    } else if (firstBucket > st.firstBucket) {
      for (const [labels, line] of st.lines) {
        let cut = 0;
        while (cut < line.buckets.length && line.buckets[cut]! < firstBucket) cut++;
        line.buckets.splice(0, cut);
        line.parts.splice(0, cut);
        if (line.buckets.length === 0) st.lines.delete(labels);
      }
      st.firstBucket = firstBucket;
      st.newest = Math.max(st.newest, firstBucket);
    }
    if (st.generation !== src.samplesGeneration) {
      const generation = src.samplesGeneration;
      for (const r of src.sampleRows(metric, resolution, st.newest)) {
        let line = st.lines.get(r.labels);
        if (!line) {
          line = { buckets: [], parts: [] };
          st.lines.set(r.labels, line);
        }
        const mean = style.invert ? 100 - r.mean : r.mean;
        // Only the mean of "available" inverts to "used"; its max would be the minimum used, so the mean stands for both.
        const max = style.invert ? mean : r.max;
        const text = `{"at":"${new Date(r.bucket * 1000).toISOString()}","mean":${JSON.stringify(mean)},"max":${JSON.stringify(max)}}`;
        const last = line.buckets.length - 1;
        if (last >= 0 && line.buckets[last] === r.bucket) line.parts[last] = text;
        else if (last < 0 || r.bucket > line.buckets[last]!) {
          line.buckets.push(r.bucket);
          line.parts.push(text);
        }
        if (r.bucket > st.newest) st.newest = r.bucket;
      }
      st.generation = generation;
    }
    // Lines in label order, as the store returns them.
    const labels = [...st.lines.keys()].sort();
    return `[${labels.map((l) => `{"label":${JSON.stringify(style.label(l))},"points":[${st.lines.get(l)!.parts.join(',')}]}`).join(',')}]`;
  }
}
