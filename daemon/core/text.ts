/**
 * Small text helpers shared by detectors and the CLI (pure, no I/O).
 */

/**
 * Shortens `text` to at most `max` characters, cutting at the last word
 * boundary so a person never reads half a word, and marks the cut with "…".
 */
export function clipAtWord(text: string, max: number): string {
  const t = text.trim();
  if (t.length <= max) return t;
  const room = t.slice(0, Math.max(1, max - 1));
  // The room may end exactly at a word's end; otherwise drop the partial word.
  const space = /\s/.test(t[room.length] ?? '') ? room.length : room.search(/\s\S*$/);
  // A single very long token (a URL, a base64 blob) has no boundary: cut it anyway.
  const cut = space > max / 2 ? room.slice(0, space) : room;
  return `${cut.replace(/[\s,;:.-]+$/, '')}…`;
}
