/**
 * Imported first by the CLI, so it runs before any dependency loads: on a Node
 * older than 22 the dependencies fail deep inside (undici, Map.groupBy) with a
 * stack trace that says nothing useful. This says what to do instead.
 */
const MIN_NODE_MAJOR = 22;

const major = Number(process.versions.node.split('.')[0]);
if (!(major >= MIN_NODE_MAJOR)) {
  process.stderr.write(
    `nodesage: Node.js ${MIN_NODE_MAJOR} or newer is needed, this is ${process.version}. ` +
      'From a checkout, `npm start` provides Node 24 by itself; otherwise install Node.js >= 22.\n',
  );
  process.exit(2);
}
