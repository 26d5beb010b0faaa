/**
 * Drain-style online log template miner (He et al., "Drain: An Online Log
 * Parsing Approach with Fixed Depth Tree", ICWS 2017).
 *
 * A line is masked and tokenised (masks.ts), then routed through a fixed-depth
 * prefix tree: first by token count, then by its first tokens (tokens holding a
 * parameter go to the `<*>` branch). The leaf holds clusters; the line joins the
 * most similar one when the share of agreeing tokens reaches the threshold, and
 * the positions that differ become `<*>`. Otherwise it starts a new cluster.
 *
 * Two changes to plain Drain, both about telling words from values without
 * per-source rules:
 * - A plain word in a template (`Started`, `spawn`, `HTTPS`) is developer text:
 *   a line with another word or a value there does not join the cluster, however
 *   similar the rest is. Identifier-like tokens (`org.foo.Bar`, `host.example`)
 *   still generalise as in Drain.
 * - Words that are really values (user names, resource names) show up as many
 *   clusters that differ at one position only. When `siblingMerge` such clusters
 *   exist, they merge and the position becomes `<*>`. Clusters whose templates
 *   become equal merge too.
 *
 * Template ids: a cluster's id is a hash of the masked tokens of the line that
 * created it (plus `idSalt`). It does not change while the template generalises,
 * and the same first line gives the same id in another process, after a restart
 * or after the cluster was evicted and re-created. When clusters merge, the
 * oldest id survives; `resolveId` follows merged ids.
 */
import { hash } from 'node:crypto';
import { maskTokens, PARAM } from './masks.js';
import { CodedError } from '../../errors.js';

/** Tunables of a TemplateMiner. */
export interface TemplateMinerOptions {
  /** Depth of the prefix tree including the root and the token-count level (Drain's `depth`). Defaults to 4. */
  depth: number;
  /** Share of agreeing tokens needed to join a cluster (Drain's `st`). Defaults to 0.5. */
  similarity: number;
  /**
   * Distinct words seen at one position, every other token equal, that make
   * the position a parameter (the clusters are merged). Fewer distinct words
   * stay apart as an enumeration (`VM Started` / `VM Stopped`). Defaults to 4.
   */
  siblingMerge: number;
  /** Children per tree node before new tokens go to the `<*>` branch. Defaults to 100. */
  maxChildren: number;
  /** Clusters kept; the least recently used one is evicted beyond that. Defaults to 1000. */
  maxClusters: number;
  /** Characters of a line that are mined; the rest is ignored. Defaults to 4096. */
  maxLineLength: number;
  /** Mixed into template ids so that two miners over one stream do not share ids. Defaults to "". */
  idSalt: string;
  /** Called with a cluster evicted to stay within maxClusters. Defaults to none. */
  onEvict?: (cluster: TemplateCluster) => void;
  /** Called when `from` was merged into `into`. Defaults to none. */
  onMerge?: (from: TemplateCluster, into: TemplateCluster) => void;
}

/** Defaults of TemplateMinerOptions. */
export const TEMPLATE_MINER_DEFAULTS: Readonly<TemplateMinerOptions> = Object.freeze({
  depth: 4,
  similarity: 0.5,
  siblingMerge: 4,
  maxChildren: 100,
  maxClusters: 1000,
  maxLineLength: 4096,
  idSalt: '',
});

/** What `add` reports for one line. */
export interface AddResult {
  /** Id of the cluster the line joined (see the module comment for its stability). */
  templateId: string;
  /** The cluster's template after this line joined it. */
  template: string;
  /** True when this line created the cluster. */
  isNew: boolean;
}

/** A cluster of lines sharing one template. */
export interface TemplateCluster {
  /** Stable id: a hash of the line that created the cluster. */
  readonly id: string;
  /** Template tokens; parameters are `<*>`. */
  readonly tokens: readonly string[];
  /** The template: tokens joined by single spaces. */
  readonly template: string;
  /** Lines added to the cluster (including merged clusters). */
  readonly count: number;
  /** Creation order inside this miner; lower is older. */
  readonly seq: number;
}

interface Cluster extends TemplateCluster {
  tokens: string[];
  template: string;
  count: number;
  /** Tree leaves this cluster is in (more than one after merges across leaves). */
  leaves: TreeNode[];
  /** Sibling-index keys this cluster is registered under, and the position of each. */
  siblingKeys: number[];
  siblingPos: number[];
  /** Which template tokens are plain words (see isWordToken). */
  words: boolean[];
  /** Template tokens that are not `<*>`. */
  constants: number;
  /** Miner tick of the last line added: the least recent cluster is evicted first. */
  lastUsed: number;
}

interface TreeNode {
  children: Map<string, TreeNode>;
  clusters: Cluster[];
  /** Parent node and this node's key in it; null at the token-count level. */
  parent: TreeNode | null;
  key: string;
  /** Token count of the lines below this node. */
  length: number;
}

/** Error thrown when a stored template cannot be restored. */
export class TemplateRestoreError extends CodedError {
  /** Stable error code. */
  readonly code = 'ERR_TEMPLATE_RESTORE';
}

// Sibling keys cost one map entry per token: long lines are left out.
const MAX_SIBLING_TOKENS = 128;
// Constant tokens that sibling clusters must share besides the differing one.
const MIN_SIBLING_CONTEXT = 2;

function newNode(parent: TreeNode | null, key: string, length: number): TreeNode {
  return { children: new Map(), clusters: [], parent, key, length };
}

function hasParam(token: string): boolean {
  return token.includes(PARAM);
}

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/**
 * A plain word as a developer writes it: letters, maybe hyphenated or with
 * signs and brackets (`Started`, `re-synch`, `(Lifecycle`, `x+`, `error(s)`,
 * `spawned.`), with no digit and no identifier punctuation inside (`.`, `_`,
 * `/`, `:`, `=`, `@`...). Identifiers (`org.foo.Bar`, `host.example`,
 * `JOB_SETUP`) and values are not words.
 */
export function isWordToken(token: string): boolean {
  let j = token.length;
  // Sentence punctuation at the end: "spawned.", "interrupt:", "error,".
  while (j > 0 && '.,:;!?'.includes(token[j - 1] as string)) j--;
  let letters = false;
  for (let k = 0; k < j; k++) {
    const c = token.charCodeAt(k);
    if (isLetter(c)) letters = true;
    else if (!WORD_SIGNS.has(c)) return false;
  }
  return letters;
}

const WORD_SIGNS = new Set([...'-\'+()[]{}"!?,;*'].map((c) => c.charCodeAt(0)));

/** Splits a stored template back into tokens (templates are single-space joined). */
export function templateTokens(template: string): string[] {
  return template.length === 0 ? [] : template.split(' ');
}

function fnv(s: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Online Drain-style template miner with bounded memory. */
export class TemplateMiner {
  readonly #o: TemplateMinerOptions;
  readonly #root = new Map<number, TreeNode>();
  readonly #byId = new Map<string, Cluster>();
  readonly #byTemplate = new Map<string, Cluster>();
  readonly #siblings = new Map<number, Cluster[]>();
  readonly #aliases = new Map<string, string>();
  #seq = 0;
  #tick = 0;
  /** Agreeing tokens of the last #bestIn result. */
  #matched = 0;

  /** Creates a miner; options are merged over TEMPLATE_MINER_DEFAULTS. */
  constructor(opts: Partial<TemplateMinerOptions> = {}) {
    this.#o = Object.freeze({ ...TEMPLATE_MINER_DEFAULTS, ...opts });
  }

  /** Number of live clusters. */
  get size(): number {
    return this.#byId.size;
  }

  /** Number of prefix-tree nodes (bounded with the clusters: empty branches are removed). */
  get treeNodes(): number {
    let count = 0;
    const walk = (node: TreeNode) => {
      count++;
      for (const c of node.children.values()) walk(c);
    };
    for (const node of this.#root.values()) walk(node);
    return count;
  }

  /** Adds one line and returns the cluster it joined. */
  add(line: string): AddResult {
    const before = this.#seq;
    const c = this.addCluster(line);
    return { templateId: c.id, template: c.template, isNew: c.seq >= before };
  }

  /**
   * Adds one line and returns its cluster: the same object for every line of
   * the cluster until it is merged into another one or evicted.
   */
  addCluster(line: string): TemplateCluster {
    const text = line.length > this.#o.maxLineLength ? line.slice(0, this.#o.maxLineLength) : line;
    const tokens = maskTokens(text);
    const n = tokens.length;
    const found = this.#search(tokens);
    if (found) {
      found.count++;
      this.#touch(found);
      // Every token agreed: nothing to generalise.
      if (this.#matched === n) return found;
      return generalise(found, tokens) ? this.#templateChanged(found) : found;
    }
    const created = this.#create(tokens, this.#leafFor(tokens), 1);
    return n === 0 ? created : this.#mergeSiblings(created);
  }

  /**
   * The cluster a line joins: the best match in the leaf its first tokens
   * lead to. A token without a branch of its own follows the `<*>` branch,
   * where clusters whose routing tokens became parameters also live.
   */
  #search(tokens: readonly string[]): Cluster | undefined {
    let node = this.#root.get(tokens.length);
    const levels = Math.min(this.#o.depth - 2, tokens.length);
    for (let d = 0; node && d < levels; d++) {
      const token = tokens[d] as string;
      // Drain's rule: the token's own branch when it exists, else the `<*>` branch.
      node = (hasParam(token) ? undefined : node.children.get(token)) ?? node.children.get(PARAM);
    }
    return node ? this.#bestIn(node, tokens) : undefined;
  }

  #bestIn(leaf: TreeNode, tokens: readonly string[]): Cluster | undefined {
    // Word flags of the line's tokens, computed on first need (a mismatch).
    const lineWords: (boolean | undefined)[] = [];
    let best: Cluster | undefined;
    let bestSame = -1;
    let bestExact = -1;
    const n = tokens.length;
    for (const c of leaf.clusters) {
      const t = c.tokens;
      let same = 0;
      let exact = 0;
      let hard = false;
      for (let i = 0; i < n; i++) {
        const a = t[i] as string;
        const b = tokens[i] as string;
        if (a === b) {
          // Equal text, or a masked value on both sides.
          same++;
          if (a !== PARAM) exact++;
        } else if (a !== PARAM && c.words[i] && (b === PARAM || lineWord(lineWords, i, b))) {
          // A word of the template against another word or a value: another message.
          hard = true;
          break;
        }
      }
      // Shared literal text is required: two lines of values alone say nothing.
      if (hard || (exact === 0 && c.constants > 0) || (n > 0 && same / n < this.#o.similarity)) continue;
      if (same > bestSame || (same === bestSame && exact > bestExact)) {
        best = c;
        bestSame = same;
        bestExact = exact;
      }
    }
    this.#matched = bestSame;
    return best;
  }

  /** Follows merges: the id that `id` now lives under (itself when never merged). */
  resolveId(id: string): string {
    let cur = id;
    for (let next = this.#aliases.get(cur); next !== undefined; next = this.#aliases.get(cur)) cur = next;
    return cur;
  }

  /** The live cluster with this id (after following merges), if any. */
  get(id: string): TemplateCluster | undefined {
    return this.#byId.get(this.resolveId(id));
  }

  /** Live clusters, most lines first. */
  templates(): { templateId: string; template: string; count: number }[] {
    return [...this.#byId.values()]
      .sort((a, b) => b.count - a.count || a.seq - b.seq)
      .map((c) => ({ templateId: c.id, template: c.template, count: c.count }));
  }

  /**
   * Re-creates a cluster from a stored template (after a restart), keeping its
   * id. A live cluster with the same id or template absorbs it instead; the
   * returned cluster is the one that holds it.
   */
  restore(id: string, template: string, count: number): TemplateCluster {
    if (!id) throw new TemplateRestoreError('template id is empty');
    if (template.includes('\n')) throw new TemplateRestoreError(`template ${id} spans lines`);
    const tokens = templateTokens(template);
    const live = this.#byId.get(id) ?? this.#byTemplate.get(templateKey(tokens.length, template));
    if (live) {
      live.count += Math.max(0, count);
      if (live.id !== id) this.#aliases.set(id, live.id);
      return live;
    }
    return this.#create(tokens, this.#leafFor(tokens), Math.max(0, count), id);
  }

  #create(tokens: string[], leaf: TreeNode, count: number, id?: string): Cluster {
    const template = tokens.join(' ');
    const c: Cluster = {
      id: id ?? this.#newId(template),
      tokens,
      template,
      count,
      seq: this.#seq++,
      leaves: [leaf],
      siblingKeys: [],
      siblingPos: [],
      words: tokens.map(isWordToken),
      constants: countConstants(tokens),
      lastUsed: ++this.#tick,
    };
    this.#aliases.delete(c.id);
    leaf.clusters.push(c);
    this.#byId.set(c.id, c);
    const key = templateKey(tokens.length, template);
    if (!this.#byTemplate.has(key)) this.#byTemplate.set(key, c);
    this.#index(c);
    this.#evictOverflow(c);
    return c;
  }

  #newId(template: string): string {
    const base = hash('sha256', `${this.#o.idSalt}\u0000${template}`, 'hex').slice(0, 16);
    // The same first line as a live cluster happens only when a restored
    // cluster sits elsewhere in the tree: keep ids unique and deterministic.
    let id = base;
    for (let i = 2; this.#byId.has(id); i++) id = `${base}-${i}`;
    return id;
  }

  #touch(c: Cluster): void {
    c.lastUsed = ++this.#tick;
  }

  /** Re-indexes a cluster whose tokens changed; merges it with an equal template. */
  #templateChanged(c: Cluster): Cluster {
    const oldKey = templateKey(c.tokens.length, c.template);
    if (this.#byTemplate.get(oldKey) === c) this.#byTemplate.delete(oldKey);
    c.template = c.tokens.join(' ');
    c.constants = countConstants(c.tokens);
    // A routing token that became `<*>`: lines with new values there find the cluster through the `<*>` branch.
    const home = this.#leafFor(c.tokens);
    if (!c.leaves.includes(home)) {
      home.clusters.push(c);
      c.leaves.push(home);
    }
    this.#unindex(c);
    this.#index(c);
    const key = templateKey(c.tokens.length, c.template);
    const other = this.#byTemplate.get(key);
    if (!other || other === c) {
      this.#byTemplate.set(key, c);
      return this.#mergeSiblings(c);
    }
    const [keep, drop] = other.seq < c.seq ? [other, c] : [c, other];
    this.#byTemplate.set(key, keep);
    this.#merge(drop, keep);
    return this.#mergeSiblings(keep);
  }

  /**
   * Merges `c` with the clusters that differ from it at one position only,
   * when that position is already a parameter in one of them or when there
   * are `siblingMerge` of them.
   */
  #mergeSiblings(c: Cluster): Cluster {
    if (this.#o.siblingMerge < 2) return c;
    for (let k = 0; k < c.siblingKeys.length; k++) {
      const group = this.#siblings.get(c.siblingKeys[k] as number);
      if (!group || group.length < 2) continue;
      const pos = c.siblingPos[k] as number;
      const members = group.filter((o) => o === c || sameExcept(o.tokens, c.tokens, pos));
      if (members.length < this.#o.siblingMerge && !members.some((o) => o.tokens[pos] === PARAM)) continue;
      if (members.length < 2) continue;
      let keep = members[0] as Cluster;
      for (const m of members) if (m.seq < keep.seq) keep = m;
      for (const m of members) if (m !== keep) this.#merge(m, keep);
      keep.tokens[pos] = PARAM;
      keep.words[pos] = false;
      // The generalised template may now equal another cluster's, or complete another group.
      return this.#templateChanged(keep);
    }
    return c;
  }

  #merge(drop: Cluster, keep: Cluster): void {
    keep.count += drop.count;
    for (const leaf of drop.leaves) {
      const list = leaf.clusters;
      const i = list.indexOf(drop);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) {
        // Lines that came this way now reach `keep` through the `<*>` branch.
        this.#prune(leaf);
      } else if (!list.includes(keep)) {
        // The branch stays for other clusters, so it must lead to `keep` too.
        list.push(keep);
        keep.leaves.push(leaf);
      }
    }
    drop.leaves = [];
    this.#unindex(drop);
    const key = templateKey(drop.tokens.length, drop.template);
    if (this.#byTemplate.get(key) === drop) this.#byTemplate.delete(key);
    this.#byId.delete(drop.id);
    this.#aliases.set(drop.id, keep.id);
    this.#touch(keep);
    this.#o.onMerge?.(drop, keep);
  }

  #index(c: Cluster): void {
    const t = c.tokens;
    const n = t.length;
    if (this.#o.siblingMerge < 2 || n > MAX_SIBLING_TOKENS) return;
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
        c.siblingKeys.push(key);
        c.siblingPos.push(i);
      }
      prefix = fnv(tok, Math.imul(prefix, 31) ^ 0x7f4a7c15);
    }
  }

  #unindex(c: Cluster): void {
    for (const key of c.siblingKeys) {
      const group = this.#siblings.get(key);
      if (!group) continue;
      const i = group.indexOf(c);
      if (i >= 0) group.splice(i, 1);
      if (group.length === 0) this.#siblings.delete(key);
    }
    c.siblingKeys = [];
    c.siblingPos = [];
  }

  #evictOverflow(keep: Cluster): void {
    while (this.#byId.size > this.#o.maxClusters) {
      // A linear scan, only when a new cluster overflows: cheaper than keeping an order on every line.
      let c: Cluster | undefined;
      for (const o of this.#byId.values()) if (o !== keep && (!c || o.lastUsed < c.lastUsed)) c = o;
      if (!c) return;
      this.#byId.delete(c.id);
      for (const leaf of c.leaves) {
        const i = leaf.clusters.indexOf(c);
        if (i >= 0) leaf.clusters.splice(i, 1);
        this.#prune(leaf);
      }
      c.leaves = [];
      this.#unindex(c);
      const key = templateKey(c.tokens.length, c.template);
      if (this.#byTemplate.get(key) === c) this.#byTemplate.delete(key);
      this.#o.onEvict?.(c);
    }
    // Aliases of merged ids: bounded along with the clusters.
    if (this.#aliases.size > this.#o.maxClusters * 4) {
      let drop = this.#aliases.size - this.#o.maxClusters * 2;
      for (const k of this.#aliases.keys()) {
        if (drop-- <= 0) break;
        this.#aliases.delete(k);
      }
    }
  }

  /** Removes empty tree nodes upwards, so the tree shrinks with evictions. */
  #prune(leaf: TreeNode): void {
    let node: TreeNode | null = leaf;
    while (node && node.clusters.length === 0 && node.children.size === 0) {
      if (node.parent) node.parent.children.delete(node.key);
      else this.#root.delete(node.length);
      node = node.parent;
    }
  }

  #leafFor(tokens: readonly string[]): TreeNode {
    const n = tokens.length;
    let node: TreeNode | undefined = this.#root.get(n);
    if (!node) {
      node = newNode(null, '', n);
      this.#root.set(n, node);
    }
    const levels = Math.min(this.#o.depth - 2, tokens.length);
    for (let d = 0; d < levels; d++) {
      const token = tokens[d] as string;
      const key = hasParam(token) ? PARAM : token;
      let child: TreeNode | undefined = node.children.get(key);
      if (!child) {
        if (key !== PARAM && node.children.size + 1 >= this.#o.maxChildren) {
          child = node.children.get(PARAM);
          if (!child) {
            child = newNode(node, PARAM, n);
            node.children.set(PARAM, child);
          }
        } else {
          child = newNode(node, key, n);
          node.children.set(key, child);
        }
      }
      node = child;
    }
    return node;
  }
}

function countConstants(tokens: readonly string[]): number {
  let k = 0;
  for (const t of tokens) if (t !== PARAM) k++;
  return k;
}

/** Word flag of a line token, computed once per line on first need. */
function lineWord(cache: (boolean | undefined)[], i: number, token: string): boolean {
  let w = cache[i];
  if (w === undefined) {
    w = isWordToken(token);
    cache[i] = w;
  }
  return w;
}

function templateKey(n: number, template: string): string {
  return `${n}\u0000${template}`;
}

function sameExcept(a: readonly string[], b: readonly string[], pos: number): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (i !== pos && a[i] !== b[i]) return false;
  return true;
}

/** Turns the positions where the line differs into `<*>`; true when the template changed. */
function generalise(c: Cluster, tokens: readonly string[]): boolean {
  const template = c.tokens;
  let changed = false;
  for (let i = 0; i < template.length; i++) {
    if (template[i] !== tokens[i] && template[i] !== PARAM) {
      template[i] = PARAM;
      c.words[i] = false;
      changed = true;
    }
  }
  return changed;
}
