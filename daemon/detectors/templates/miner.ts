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
import { ClusterIndex } from './cluster-index.js';
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

/** Online Drain-style template miner with bounded memory. */
export class TemplateMiner {
  readonly #o: TemplateMinerOptions;
  readonly #root = new Map<number, TreeNode>();
  readonly #clusters: ClusterIndex<Cluster>;
  #seq = 0;
  #tick = 0;
  /** Agreeing tokens of the last #bestIn result. */
  #matched = 0;

  /** Creates a miner; options are merged over TEMPLATE_MINER_DEFAULTS. */
  constructor(opts: Partial<TemplateMinerOptions> = {}) {
    this.#o = Object.freeze({ ...TEMPLATE_MINER_DEFAULTS, ...opts });
    this.#clusters = new ClusterIndex(this.#o.siblingMerge >= 2);
  }

  /** Number of live clusters. */
  get size(): number {
    return this.#clusters.size;
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
    return this.#clusters.resolve(id);
  }

  /** The live cluster with this id (after following merges), if any. */
  get(id: string): TemplateCluster | undefined {
    return this.#clusters.get(id);
  }

  /** Live clusters, most lines first. */
  templates(): { templateId: string; template: string; count: number }[] {
    return [...this.#clusters.values()]
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
    const live = this.#clusters.find(id, tokens, template);
    if (live) {
      live.count += Math.max(0, count);
      if (live.id !== id) this.#clusters.alias(id, live.id);
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
      words: tokens.map(isWordToken),
      constants: countConstants(tokens),
      lastUsed: ++this.#tick,
    };
    leaf.clusters.push(c);
    this.#clusters.add(c);
    this.#evictOverflow(c);
    return c;
  }

  #newId(template: string): string {
    const base = hash('sha256', `${this.#o.idSalt}\u0000${template}`, 'hex').slice(0, 16);
    // The same first line as a live cluster happens only when a restored
    // cluster sits elsewhere in the tree: keep ids unique and deterministic.
    let id = base;
    for (let i = 2; this.#clusters.has(id); i++) id = `${base}-${i}`;
    return id;
  }

  #touch(c: Cluster): void {
    c.lastUsed = ++this.#tick;
  }

  /** Re-indexes a cluster whose tokens changed; merges it with an equal template. */
  #templateChanged(c: Cluster): Cluster {
    const oldTemplate = c.template;
    c.template = c.tokens.join(' ');
    c.constants = countConstants(c.tokens);
    // A routing token that became `<*>`: lines with new values there find the cluster through the `<*>` branch.
    const home = this.#leafFor(c.tokens);
    if (!c.leaves.includes(home)) {
      home.clusters.push(c);
      c.leaves.push(home);
    }
    const other = this.#clusters.retemplate(c, oldTemplate);
    if (!other) return this.#mergeSiblings(c);
    const [keep, drop] = other.seq < c.seq ? [other, c] : [c, other];
    this.#clusters.claimTemplate(keep);
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
    for (const [pos, group] of this.#clusters.siblingGroups(c)) {
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
    this.#clusters.remove(drop, keep);
    this.#touch(keep);
    this.#o.onMerge?.(drop, keep);
  }

  #evictOverflow(keep: Cluster): void {
    while (this.#clusters.size > this.#o.maxClusters) {
      // A linear scan, only when a new cluster overflows: cheaper than keeping an order on every line.
      let c: Cluster | undefined;
      for (const o of this.#clusters.values()) if (o !== keep && (!c || o.lastUsed < c.lastUsed)) c = o;
      if (!c) return;
      this.#clusters.remove(c);
      for (const leaf of c.leaves) {
        const i = leaf.clusters.indexOf(c);
        if (i >= 0) leaf.clusters.splice(i, 1);
        this.#prune(leaf);
      }
      c.leaves = [];
      this.#o.onEvict?.(c);
    }
    // Aliases of merged ids: bounded along with the clusters.
    this.#clusters.boundAliases(this.#o.maxClusters * 4, this.#o.maxClusters * 2);
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
