/**
 * The pure parts of the CLI's output for people: tables at any terminal
 * width, colour only when wanted, the daemon's pretty log lines, the cut of a
 * long log line at a word, and the forms `since` accepts.
 */
import { describe, expect, it } from 'vitest';
import { createStyle, formatFindingsTable, wantsColor } from '../daemon/cli/format.js';
import { prettyLine } from '../daemon/cli/pretty-log.js';
import { parseSince, SinceError } from '../daemon/core/since.js';
import { clipAtWord } from '../daemon/core/text.js';
import { toPublicFinding } from '../daemon/tracker/tracker.js';
import { seededFindings } from './helpers/surface-node.js';

const findings = seededFindings('edge-04', Date.parse('2026-05-04T08:00:00Z')).map(toPublicFinding);

describe('findings table', () => {
  for (const width of [60, 80, 100, 160, 240]) {
    it(`fits ${width} columns and keeps a space before every column`, () => {
      const lines = formatFindingsTable(findings, { width }).trimEnd().split('\n');
      for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(width);
      const head = lines[0]!;
      const seenAt = head.indexOf('LAST SEEN');
      const titleAt = head.indexOf('TITLE');
      for (const row of lines.filter((l) => /^(critical|warning) /.test(l))) {
        expect(row[titleAt - 1], row).toBe(' ');
        expect(row.slice(seenAt, titleAt).trim()).toMatch(width < 90 ? /^05-04 07:\d\d$/ : /^2026-05-04 07:\d\d:00Z$/);
      }
    });
  }

  it('is coloured only with a colour style, and colour is only for a TTY without NO_COLOR', () => {
    expect(formatFindingsTable(findings, { style: createStyle(true) })).toContain('\u001b[31m');
    expect(formatFindingsTable(findings)).not.toContain('\u001b[');
    expect(wantsColor({ isTTY: true }, {})).toBe(true);
    expect(wantsColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(wantsColor({ isTTY: false }, {})).toBe(false);
    expect(wantsColor({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });
});

describe('pretty daemon log', () => {
  it('turns a pino line into time, level, message and fields; an error shows its message, not its stack', () => {
    const line = JSON.stringify({ level: 50, time: '2026-05-04T08:00:01.123Z', node: 'edge-04', source: 'kubelet', err: { message: 'connect ECONNREFUSED 10.0.0.1:10250', stack: 'Error: ...\n at x' }, msg: 'poll failed' });
    expect(prettyLine(line, createStyle(false))).toBe('08:00:01 ERROR poll failed  source=kubelet err="connect ECONNREFUSED 10.0.0.1:10250"');
    expect(prettyLine('not json', createStyle(false))).toBeNull();
  });
});

describe('text helpers', () => {
  it('cuts a long log line at a word boundary, never mid-word', () => {
    const line = 'panic: runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b1c]';
    const cut = clipAtWord(line, 60);
    expect(cut).toBe('panic: runtime error: invalid memory address or nil pointer…');
    expect(cut.length).toBeLessThanOrEqual(60);
    expect(clipAtWord('short line', 60)).toBe('short line');
    // One long token has no boundary to cut at.
    expect(clipAtWord('x'.repeat(100), 20)).toBe(`${'x'.repeat(19)}…`);
  });

  it('since accepts RFC3339 and ages, and names both when neither fits', () => {
    const now = Date.parse('2026-05-04T08:00:00Z');
    expect(parseSince('30m', now)).toBe('2026-05-04T07:30:00.000Z');
    expect(parseSince('1h', now)).toBe('2026-05-04T07:00:00.000Z');
    expect(parseSince('2d', now)).toBe('2026-05-02T08:00:00.000Z');
    expect(parseSince('2026-05-01T10:00:00+02:00', now)).toBe('2026-05-01T08:00:00.000Z');
    expect(() => parseSince('yesterday', now)).toThrow(SinceError);
    expect(() => parseSince('yesterday', now)).toThrow('since must be an RFC3339 time (2026-05-04T08:00:00Z) or an age such as 30m, 1h, 2d, not "yesterday"');
  });
});
