/**
 * The server-sent events parser the dashboard and `nodesage ask` share
 * (daemon/api/web/sse.js): what a stream's bytes become, whatever way the
 * network cuts them. Field rules as in the WHATWG HTML standard, "Server-sent
 * events", 9.2.6 Interpreting an event stream.
 */
import { describe, expect, it } from 'vitest';
import { sseParser } from '../daemon/api/web/sse.js';

/** Feeds `chunks` in order; returns the events seen. */
function parse(...chunks: string[]): [string, string][] {
  const events: [string, string][] = [];
  const push = sseParser((event, data) => events.push([event, data]));
  for (const c of chunks) push(c);
  return events;
}

describe('sseParser', () => {
  it('names an event without an event field "message", and takes the field value after one optional space', () => {
    expect(parse('data: a\n\nevent: token\ndata:b\n\nevent:done\ndata:  c\n\n')).toEqual([
      ['message', 'a'],
      ['token', 'b'],
      ['done', ' c'],
    ]);
  });

  it('ends lines at CRLF, CR and LF alike', () => {
    expect(parse('event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n')).toEqual([
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ]);
  });

  it('joins several data lines with LF, keeps a colon inside the value, and reads a bare "data" as an empty line', () => {
    expect(parse('data: {"a":1,\ndata: "b":"x:y"}\ndata\n\n')).toEqual([['message', '{"a":1,\n"b":"x:y"}\n']]);
  });

  it('skips comment lines, unknown fields and blocks without data (keep-alives)', () => {
    expect(parse(': keep-alive\n\nid: 7\nretry: 1000\n\n: hi\nevent: token\nfoo: bar\ndata: t\n\n')).toEqual([['token', 't']]);
  });

  it('waits for the blank line: an event cut anywhere across chunks comes out once, whole', () => {
    const stream = 'event: token\r\ndata: {"text":"héllo"}\r\n\r\nevent: done\r\ndata: {}\r\n\r\n';
    const whole = parse(stream);
    expect(whole).toEqual([
      ['token', '{"text":"héllo"}'],
      ['done', '{}'],
    ]);
    for (let i = 1; i < stream.length; i++) {
      // A cut between a CR and its LF is left out: those two chunks would read as two line ends.
      if (stream[i - 1] === '\r' && stream[i] === '\n') continue;
      expect(parse(stream.slice(0, i), stream.slice(i)), `cut at ${i}`).toEqual(whole);
    }
    // One character a chunk (LF line ends, so no CR is parted from its LF).
    expect(parse(...stream.replaceAll('\r\n', '\n'))).toEqual(whole);
  });

  it('holds back an event whose blank line has not come yet', () => {
    expect(parse('event: token\ndata: x\n')).toEqual([]);
  });
});
