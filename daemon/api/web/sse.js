// Server-sent events (text/event-stream) parsing, shared by the dashboard
// (served as /ui/sse.js, imported by app.js) and the `nodesage ask` CLI
// (imported from dist/daemon/api/web/, where the build copies this folder).
// Plain ES module, no build step, so one file runs in both places.

/**
 * Splits a server-sent event stream into events: returns a function to feed
 * the stream's chunks to, in order; `onEvent(event, data)` is called once a
 * blank line ends an event that has data. CRLF and CR end lines as LF does,
 * `:` lines are comments, several `data:` lines join with LF, and an event
 * without an `event:` field is a 'message'.
 */
export function sseParser(onEvent) {
  let buf = '';
  return (chunk) => {
    buf += chunk.replace(/\r\n?/g, '\n');
    for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length > 0) onEvent(event, data.join('\n'));
    }
  };
}
