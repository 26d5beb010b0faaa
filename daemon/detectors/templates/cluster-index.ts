/**
 * The template miner's lookups of its live clusters, kept in step with each
 * other: by id, by template (two clusters whose templates become equal merge),
 * by sibling key (clusters equal but at one position), and the ids of merged
 * clusters, so an id handed out before a merge still resolves.
 */
import { PARAM } from './masks.js';

/** What the index reads of a cluster. */
export interface IndexedCluster {
  readonly id: string;
  readonly tokens: readonly string[];
  /** The tokens joined by single spaces. */
  readonly template: string;
  /** Tokens that are not `<*>`. */
  readonly constants: number;
}

// Sibling keys cost one map entry per token: long lines are left out.
const MAX_SIBLING_TOKENS = 128;
// Constant tokens that sibling clusters must share besides the differing one.
const MIN_SIBLING_CONTEXT = 2;

/** Sibling-index keys a cluster is filed under, and the token position of each. */
interface SiblingKeys {
  keys: number[];
  pos: number[];
}

const NO_SIBLINGS: Readonly<{ keys: readonly number[]; pos: readonly number[] }> = { keys: [], pos: [] };

/** Live clusters by id, template and sibling key, plus the aliases of merged ids. */
export class ClusterIndex<C extends IndexedCluster> {
  readonly #byId = new Map<string, C>();
  readonly #byTemplate = new Map<string, C>();
  readonly #siblings = new Map<number, C[]>();
  readonly #siblingKeys = new Map<C, SiblingKeys>();
  readonly #aliases = new Map<string, string>();
  readonly #withSiblings: boolean;

  /** `withSiblings`: keep the sibling index (the miner merges siblings). */
  constructor(withSiblings: boolean) {
    this.#withSiblings = withSiblings;
  }

  /** Number of live clusters. */
  get size(): number {
    return this.#byId.size;
  }

  /** Live clusters, oldest filed first. */
  values(): IterableIterator<C> {
    return this.#byId.values();
  }

  /** True when a live cluster has this very id (merged ids not followed). */
  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /** Follows merges: the id that `id` now lives under (itself when never merged). */
  resolve(id: string): string {
    let cur = id;
    for (let next = this.#aliases.get(cur); next !== undefined; next = this.#aliases.get(cur)) cur = next;
    return cur;
  }

  /** The live cluster with this id, after following merges. */
  get(id: string): C | undefined {
    return this.#byId.get(this.resolve(id));
  }

  /** The live cluster with this very id, else one with this template. */
  find(id: string, tokens: readonly string[], template: string): C | undefined {
    return this.#byId.get(id) ?? this.#byTemplate.get(templateKey(tokens.length, template));
  }

  /** Files a new cluster; its id stops being an alias. */
  add(c: C): void {
    this.#aliases.delete(c.id);
    this.#byId.set(c.id, c);
    const key = templateKey(c.tokens.length, c.template);
    if (!this.#byTemplate.has(key)) this.#byTemplate.set(key, c);
    this.#fileSiblings(c);
  }

  /** Makes `from` resolve to `to`. */
  alias(from: string, to: string): void {
    this.#aliases.set(from, to);
  }

  /** Takes a cluster out (evicted, or merged `into` another: then its id resolves there). */
  remove(c: C, into?: C): void {
    this.#unfileSiblings(c);
    const key = templateKey(c.tokens.length, c.template);
    if (this.#byTemplate.get(key) === c) this.#byTemplate.delete(key);
    this.#byId.delete(c.id);
    if (into) this.#aliases.set(c.id, into.id);
  }

  /**
   * Re-files a cluster whose tokens changed (its template was `oldTemplate`).
   * Returns the other live cluster that already has the new template, which
   * the caller merges with it (see `claimTemplate`); else `c` now holds it.
   */
  retemplate(c: C, oldTemplate: string): C | undefined {
    const oldKey = templateKey(c.tokens.length, oldTemplate);
    if (this.#byTemplate.get(oldKey) === c) this.#byTemplate.delete(oldKey);
    this.#unfileSiblings(c);
    this.#fileSiblings(c);
    const key = templateKey(c.tokens.length, c.template);
    const other = this.#byTemplate.get(key);
    if (other && other !== c) return other;
    this.#byTemplate.set(key, c);
    return undefined;
  }

  /** Makes `c` the cluster found by its template (the one kept of two with equal templates). */
  claimTemplate(c: C): void {
    this.#byTemplate.set(templateKey(c.tokens.length, c.template), c);
  }

  /**
   * For each position where `c` has possible siblings: the position and the
   * clusters filed under its key, `c` among them. Keys can collide: compare
   * the tokens before merging.
   */
  *siblingGroups(c: C): Generator<[pos: number, group: readonly C[]]> {
    const { keys, pos } = this.#siblingKeys.get(c) ?? NO_SIBLINGS;
    for (let k = 0; k < keys.length; k++) {
      const group = this.#siblings.get(keys[k] as number);
      if (group && group.length >= 2) yield [pos[k] as number, group];
    }
  }

  /** Drops the oldest aliases once there are more than `max`, down to `keep`. */
  boundAliases(max: number, keep: number): void {
    if (this.#aliases.size <= max) return;
    let drop = this.#aliases.size - keep;
    for (const k of this.#aliases.keys()) {
      if (drop-- <= 0) break;
      this.#aliases.delete(k);
    }
  }

  #fileSiblings(c: C): void {
    const t = c.tokens;
    const n = t.length;
    if (!this.#withSiblings || n > MAX_SIBLING_TOKENS) return;
    const filed: SiblingKeys = { keys: [], pos: [] };
    // Key of position i: hashes of everything before and after it, so clusters
    // equal except at i share the key (verified token by token before merging).
    const suffix = new Array<number>(n + 1);
    suffix[n] = 0x2545f491;
    for (let i = n - 1; i >= 0; i--) suffix[i] = fnv(t[i] as string, Math.imul(suffix[i + 1] as number, 31) ^ 0x9e3779b9);
    const constants = c.constants;
    let prefix = 0x811c9dc5;
    for (let i = 0; i < n; i++) {
      const tok = t[i] as string;
      const isParam = tok === PARAM;
      // Siblings must share real text: "generating <*>" and "store <*>" share nothing.
      if (constants - (isParam ? 0 : 1) >= MIN_SIBLING_CONTEXT) {
        // 53 bits: 32 of the prefix hash (mixed with n and i), 21 of the suffix hash.
        const key = (Math.imul(prefix ^ Math.imul(i + 1, 0x9e3779b1), 0x85ebca6b) ^ n) * 0x200000 + ((suffix[i + 1] as number) & 0x1fffff);
        const group = this.#siblings.get(key);
        if (group) group.push(c);
        else this.#siblings.set(key, [c]);
        filed.keys.push(key);
        filed.pos.push(i);
      }
      prefix = fnv(tok, Math.imul(prefix, 31) ^ 0x7f4a7c15);
    }
    if (filed.keys.length > 0) this.#siblingKeys.set(c, filed);
  }

  #unfileSiblings(c: C): void {
    const filed = this.#siblingKeys.get(c);
    if (!filed) return;
    this.#siblingKeys.delete(c);
    for (const key of filed.keys) {
      const group = this.#siblings.get(key);
      if (!group) continue;
      const i = group.indexOf(c);
      if (i >= 0) group.splice(i, 1);
      if (group.length === 0) this.#siblings.delete(key);
    }
  }
}

function templateKey(n: number, template: string): string {
  return `${n}\u0000${template}`;
}

function fnv(s: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
