import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isErrorLine, textLevel } from '../daemon/detectors/templates/level.js';
import { maskLine } from '../daemon/detectors/templates/masks.js';
import { mineStream } from '../daemon/detectors/templates/mine-cli.js';
import { runCli } from './helpers/daemon-process.js';
import { TemplateMiner } from '../daemon/detectors/templates/miner.js';

/** Adds every line to one miner and returns the template id of each. */
function mine(lines: string[], miner = new TemplateMiner()): { ids: string[]; miner: TemplateMiner } {
  const clusters = lines.map((l) => miner.addCluster(l));
  return { ids: clusters.map((c) => miner.resolveId(c.id)), miner };
}

const HEX64 = (seed: string) => seed.repeat(64).slice(0, 64);

describe('masks', () => {
  it('masks numbers, ids, addresses, durations, paths and timestamps the same way for every source', () => {
    expect(maskLine('I0312 10:15:32.118204    2384 kubelet.go:2055] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 2h33m12.704970756s ago; threshold is 3m0s"')).toBe(
      '<*> kubelet.go:<*>] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active <*> ago; threshold is <*>',
    );
    // A value and the punctuation around it are one parameter.
    expect(maskLine('dial tcp 10.96.0.10:53: i/o timeout after 150ms')).toBe('dial tcp <*> i/o timeout after <*>');
    expect(maskLine('upstream [fd00:10:96::a]:53 and fe80::1 and 192.168.1.20')).toBe('upstream <*> and <*> and <*>');
    expect(maskLine('pod 7c0d1f6e-2b7a-4c55-9a39-0f3c2e8d9b11 sandbox 0x7f3a')).toBe('pod <*> sandbox <*>');
    expect(maskLine('[WARNING] No files matching import glob pattern: /etc/coredns/custom/*.server')).toBe(
      '[WARNING] No files matching import glob pattern: <*>',
    );
    expect(maskLine('GET https://registry.example.org/v2/library/nginx/manifests/latest returned 404')).toBe('GET <*> returned <*>');
    expect(maskLine('Sun Dec 04 04:47:44 2005 worker ready, took 1.5 seconds (1200 bytes)')).toBe('<*> worker ready, took <*>');
    expect(maskLine('probe for web-5d8f7b9c4d-xkqzv failed')).toBe('probe for <*> failed');
    expect(maskLine('uid=0 gid=0 user=root')).toBe('uid=<*> gid=<*> user=root');
    expect(maskLine('time="2025-03-12T10:15:30.112233445Z" level=info')).toBe('time="<*>" level=info');
    expect(maskLine('link 52:54:00:ab:cd:ef up')).toBe('link <*> up');
    expect(maskLine('store operation.......................1')).toBe('store operation ... <*>');
    expect(maskLine('')).toBe('');
  });
});

describe('empty and present values in one slot', () => {
  it('masks an empty value like a present one: key= and (), [], {}, "" ', () => {
    expect(maskLine('authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4')).toBe(
      'authentication failure; logname=<*> uid=<*> euid=<*> tty=NODEVssh ruser=<*> rhost=<*>',
    );
    expect(maskLine('authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=')).toBe(
      'authentication failure; logname=<*> uid=<*> euid=<*> tty=NODEVssh ruser=<*> rhost=<*>',
    );
    expect(maskLine('items=[] labels={} name="" args ()')).toBe('items=[<*>] labels={<*>} name="<*>" args <*>');
    // Not an empty value: an operator, a call without arguments, a key whose value is spaced into the next token.
    expect(maskLine('a==b called init() status= true')).toBe('a==b called init() status= true');
  });

  it('masks a host name alone in parentheses like the address or the empty () the same statement prints elsewhere', () => {
    const lines = [
      'connection from 206.196.21.129 () at Fri Jul 22 09:42:24 2005',
      'connection from 82.83.227.67 (dsl-082-083-227-067.arcor-ip.net) at Sat Jun 18 02:08:10 2005',
      'connection from 82.83.227.68 (mail.example.com) at Sat Jun 18 02:09:10 2005',
    ];
    expect(new Set(lines.map(maskLine))).toEqual(new Set(['connection from <*> at <*>']));
    // A plain word in parentheses is text, and a Java frame keeps its file name.
    expect(maskLine('state (Lifecycle) at Foo.bar(Foo.java)')).toBe('state (Lifecycle) at Foo.bar(Foo.java)');
  });

  it('mines lines whose value is empty in some and present in others into one template', () => {
    const lines: string[] = [];
    for (let i = 0; i < 30; i++) {
      lines.push(`pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=${i % 3 === 0 ? '' : `10.1.2.${i}`}`);
      lines.push(`ftpd: connection from 10.0.${i}.7 (${i % 2 === 0 ? '' : `host-${i}.example.net`}) at Sat Jun 18 02:08:10 2005`);
      lines.push(`sshd: session opened for user ${['root', 'news', 'cyrus', 'test'][i % 4]} by (uid=${i % 2 === 0 ? '' : '0'})`);
    }
    const { miner } = mine(lines);
    expect(miner.templates().map((t) => [t.template, t.count])).toEqual([
      ['pam_unix(sshd:auth): authentication failure; logname=<*> uid=<*> euid=<*> tty=ssh ruser=<*> rhost=<*>', 30],
      ['ftpd: connection from <*> at <*>', 30],
      ['sshd: session opened for user <*> by (uid=<*>)', 30],
    ]);
  });
});

describe('TemplateMiner', () => {
  it('groups kubelet, containerd and app lines that differ only in values, and keeps different messages apart', () => {
    const lines = [
      // 0-2: kubelet PLEG line with different pods, ids and times
      `I0312 10:15:32.118204    2384 kubelet.go:2453] "SyncLoop (PLEG): event for pod" pod="shop/web-5d8f7b9c4d-xkqzv" event={"ID":"1b2c3d4e-0000-4000-8000-000000000001","Type":"ContainerStarted","Data":"${HEX64('a1')}"}`,
      `I0312 10:16:01.501120    2384 kubelet.go:2453] "SyncLoop (PLEG): event for pod" pod="db/pg-0" event={"ID":"1b2c3d4e-0000-4000-8000-000000000002","Type":"ContainerStarted","Data":"${HEX64('b2')}"}`,
      `I0312 10:17:44.900001    2384 kubelet.go:2453] "SyncLoop (PLEG): event for pod" pod="kube-system/coredns-76f75df574-8qz2n" event={"ID":"1b2c3d4e-0000-4000-8000-000000000003","Type":"ContainerStarted","Data":"${HEX64('c3')}"}`,
      // 3-4: kubelet PLEG health, different durations
      'E0312 10:20:00.000001    2384 kubelet.go:2055] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 3m5.118s ago; threshold is 3m0s"',
      'E0312 10:25:00.000001    2384 kubelet.go:2055] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 2h33m12.704970756s ago; threshold is 3m0s"',
      // 5-6: containerd pulls of different images
      'time="2025-03-12T10:15:30.112233445Z" level=info msg="PullImage \\"docker.io/library/nginx:1.25.3\\""',
      'time="2025-03-12T10:18:02.000000001Z" level=info msg="PullImage \\"registry.k8s.io/pause:3.9\\""',
      // 7-8: containerd sandbox starts
      `time="2025-03-12T10:15:31.000000001Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:web-5d8f7b9c4d-xkqzv,Uid:1b2c3d4e-0000-4000-8000-000000000001,Namespace:shop,Attempt:0,} returns sandbox id \\"${HEX64('d4')}\\""`,
      `time="2025-03-12T10:16:00.000000001Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:pg-0,Uid:1b2c3d4e-0000-4000-8000-000000000002,Namespace:db,Attempt:1,} returns sandbox id \\"${HEX64('e5')}\\""`,
      // 9-10: app lines with different numbers and client addresses
      '2025-03-12 10:15:40.120  INFO 1 --- [nio-8080-exec-3] c.e.shop.OrderController : Order 10442 created for client 10.244.1.17:52114 in 48ms',
      '2025-03-12 10:15:41.002  INFO 1 --- [nio-8080-exec-7] c.e.shop.OrderController : Order 10443 created for client 10.244.2.9:40012 in 1.2s',
      // 11: a different app message of the same length
      '2025-03-12 10:15:42.310 ERROR 1 --- [nio-8080-exec-1] c.e.shop.OrderController : Order 10444 rejected for client 10.244.1.17:52120 in 12ms',
      // 12-13: VM-style lifecycle words: an enumeration, not a parameter
      'instance 42 VM Started (Lifecycle Event)',
      'instance 43 VM Stopped (Lifecycle Event)',
    ];
    const { ids, miner } = mine(lines);
    expect(new Set(ids.slice(0, 3)).size).toBe(1);
    expect(new Set(ids.slice(3, 5)).size).toBe(1);
    expect(ids[5]).toBe(ids[6]);
    expect(ids[7]).toBe(ids[8]);
    expect(ids[9]).toBe(ids[10]);
    expect(ids[11]).not.toBe(ids[9]);
    expect(ids[12]).not.toBe(ids[13]);
    // Eight distinct messages, nothing else.
    expect(new Set(ids).size).toBe(8);
    const pleg = miner.get(ids[3] as string);
    expect(pleg?.template).toBe(
      '<*> kubelet.go:<*>] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active <*> ago; threshold is <*>',
    );
    expect(miner.get(ids[5] as string)?.template).toBe('time="<*>" level=info msg="PullImage <*>');
  });

  it('turns a word position into a parameter once enough distinct words fill it, and keeps one id', () => {
    const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
    const lines = users.map((u, i) => `Invalid user ${u} from 203.0.113.${i + 1} port ${40000 + i}`);
    const miner = new TemplateMiner();
    const online = lines.map((l) => miner.add(l));
    // The first three users look like an enumeration, the fourth makes it a parameter.
    expect(new Set(online.slice(0, 3).map((r) => r.templateId)).size).toBe(3);
    const merged = online[3];
    expect(merged?.template).toBe('Invalid user <*> from <*> port <*>');
    // The oldest id survives and every earlier id resolves to it.
    expect(merged?.templateId).toBe(online[0]?.templateId);
    for (const r of online) expect(miner.resolveId(r.templateId)).toBe(online[0]?.templateId);
    expect(online[5]?.templateId).toBe(online[0]?.templateId);
    expect(online[5]?.isNew).toBe(false);
    expect(miner.templates()).toEqual([{ templateId: online[0]?.templateId, template: 'Invalid user <*> from <*> port <*>', count: 6 }]);
  });

  it('gives the same id to the same first line in another miner, and a different one with another salt', () => {
    const a = new TemplateMiner().add('connection to db-primary refused');
    const b = new TemplateMiner().add('connection to db-primary refused');
    const c = new TemplateMiner({ idSalt: 'error' }).add('connection to db-primary refused');
    expect(a.templateId).toMatch(/^[0-9a-f]{16}$/);
    expect(b.templateId).toBe(a.templateId);
    expect(c.templateId).not.toBe(a.templateId);
    expect(a.isNew).toBe(true);
  });

  it('keeps the id while the template generalises', () => {
    const m = new TemplateMiner();
    const first = m.add('Registering class org.example.EventType for class org.example.Handler');
    const second = m.add('Registering class org.example.JobEventType for class org.example.Dispatcher');
    expect(second.templateId).toBe(first.templateId);
    expect(second.template).toBe('Registering class <*> for class <*>');
    expect(second.isNew).toBe(false);
  });

  it('stays within maxClusters by evicting the least recently used cluster', () => {
    const evicted: string[] = [];
    const m = new TemplateMiner({ maxClusters: 3, onEvict: (c) => evicted.push(c.template) });
    const keep = m.add('heartbeat ok');
    m.add('alpha started');
    m.add('beta finished cleanly');
    m.add('heartbeat ok');
    m.add('gamma rotated its keys today');
    expect(m.size).toBe(3);
    expect(evicted).toEqual(['alpha started']);
    expect(m.get(keep.templateId)?.count).toBe(2);
    // A new line like the evicted one starts over under the same id.
    const again = m.add('alpha started');
    expect(again.isNew).toBe(true);
    expect(evicted).toEqual(['alpha started', 'beta finished cleanly']);
  });

  it('keeps clusters and tree nodes bounded over an endless stream of new messages', () => {
    const m = new TemplateMiner({ maxClusters: 50 });
    const words = ['amber', 'birch', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'heron', 'iris', 'jade'];
    const feed = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const w = (k: number) => words[Math.floor(i / 10 ** k) % 10] as string;
        // New words in the routing positions, a new message every 2000 lines.
        m.add(`${w(0)}${w(1)} ${w(2)} says ${w(3)}${w(4)} ${'hello '.repeat(i % 7)}done`);
      }
    };
    feed(0, 20_000);
    const nodes = m.treeNodes;
    expect(m.size).toBeLessThanOrEqual(50);
    feed(20_000, 60_000);
    expect(m.size).toBeLessThanOrEqual(50);
    // Twice as many more lines, no more tree than a few nodes per cluster.
    expect(m.treeNodes).toBeLessThanOrEqual(Math.max(nodes, 50 * 4));
  });

  it('restores stored templates under their ids so later lines join them', () => {
    const m = new TemplateMiner();
    m.restore('0123456789abcdef', 'Order <*> created for client <*> in <*>', 40);
    const r = m.add('Order 991 created for client 10.0.0.4:1234 in 12ms');
    expect(r.templateId).toBe('0123456789abcdef');
    expect(r.isNew).toBe(false);
    expect(m.get('0123456789abcdef')?.count).toBe(41);
  });
});

describe('line level', () => {
  it('takes the first level marker of the line, so data that says "error" does not make an error', () => {
    expect(textLevel('I0312 10:15:32.118204    2384 prober.go:107] "Probe failed" probeType="Readiness" output="error: 503"')).toBe('info');
    expect(textLevel('E0312 10:15:32.118204    2384 pod_workers.go:1298] "Error syncing pod, skipping"')).toBe('error');
    expect(textLevel('time="2025-03-12T10:15:30Z" level=info msg="cleaning up dead shim" error_count=0')).toBe('info');
    expect(textLevel('time="2025-03-12T10:15:30Z" level=error msg="ContainerStatus failed"')).toBe('error');
    expect(textLevel('{"ts":1710238530.1,"level":"warn","msg":"slow request"}')).toBe('warning');
    expect(textLevel('[WARNING] No files matching import glob pattern: /etc/coredns/custom/*.server')).toBe('warning');
    expect(textLevel('2025-03-12 10:15:40.120  INFO 1 --- [main] c.e.Shop : retry after ERROR from upstream')).toBe('info');
    expect(textLevel('2025-03-12 10:15:40.120 ERROR 1 --- [main] o.s.boot.SpringApplication : Application run failed')).toBe('error');
    expect(textLevel('panic: runtime error: invalid memory address or nil pointer dereference')).toBe('error');
    expect(textLevel('java.lang.IllegalStateException: Failed to load ApplicationContext')).toBe('error');
    expect(textLevel('redis.exceptions.ConnectionError: Error -3 connecting to redis:6379.')).toBe('error');
    expect(textLevel('    at org.example.Main.run(Main.java:42)')).toBeNull();
    expect(textLevel('request served in 12ms')).toBeNull();
    expect(isErrorLine({ text: 'Failed to start Docker Application Container Engine.', priority: 3 })).toBe(true);
    expect(isErrorLine({ text: 'Started Docker Application Container Engine.', priority: 6 })).toBe(false);
  });
});

async function runMine(chunks: (string | Buffer)[], opts?: Parameters<typeof mineStream>[2]): Promise<{ templateId: string; template: string }[]> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk);
      cb();
    },
  });
  await mineStream(Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))), sink, opts);
  const text = Buffer.concat(out).toString('utf8');
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text === '' ? [] : text.slice(0, -1).split('\n').map((l) => JSON.parse(l));
}

describe('mineStream (nodesage logs mine)', () => {
  it('writes one JSON line per input line, in order, with empty lines, CRLF, invalid UTF-8 and lines split across chunks', async () => {
    const euro = Buffer.from('€', 'utf8'); // 3 bytes, split across two chunks below
    const chunks: (string | Buffer)[] = [
      'GET /healthz 200 3ms\r\n',
      '\n',
      Buffer.concat([Buffer.from('price '), euro.subarray(0, 1)]),
      Buffer.concat([euro.subarray(1), Buffer.from(' 12\nbad byte '), Buffer.from([0xff, 0xfe]), Buffer.from(' here\nGET /hea')]),
      'lthz 200 14ms',
    ];
    const rows = await runMine(chunks);
    expect(rows).toHaveLength(5);
    expect(rows.map((r) => r.template)).toEqual(['GET /healthz <*>', '', 'price € <*>', 'bad byte \uFFFD\uFFFD here', 'GET /healthz <*>']);
    expect(rows[4]?.templateId).toBe(rows[0]?.templateId);
    expect(new Set(rows.map((r) => r.templateId)).size).toBe(4);
    for (const r of rows) expect(Object.keys(r)).toEqual(['templateId', 'template']);
  });

  it('prints the final cluster for every line of a batch, and the arrival id when batchLines is 1', async () => {
    const input = ['Invalid user alice from 203.0.113.1', 'Invalid user bob from 203.0.113.2', 'Invalid user carol from 203.0.113.3', 'Invalid user dave from 203.0.113.4', ''].join('\n');
    const batched = await runMine([input]);
    expect(batched).toHaveLength(4);
    expect(new Set(batched.map((r) => r.templateId)).size).toBe(1);
    expect(batched[0]?.template).toBe('Invalid user <*> from <*>');
    const streamed = await runMine([input], { batchLines: 1 });
    expect(streamed).toHaveLength(4);
    expect(streamed[0]?.template).toBe('Invalid user alice from <*>');
    expect(streamed[3]?.templateId).toBe(streamed[0]?.templateId);
  });

  it('prints what it holds once a live input goes quiet, when asked to', async () => {
    const input = new PassThrough();
    const out: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk.toString('utf8'));
        cb();
      },
    });
    const done = mineStream(input, sink, { idleFlushMs: 20 });
    input.write('GET /healthz 200 3ms\nGET /healthz 200 4ms\n');
    await new Promise((r) => setTimeout(r, 200));
    // Printed before the input ended.
    expect(out.join('').split('\n').filter(Boolean)).toHaveLength(2);
    input.end('GET /readyz 200 1ms\n');
    await done;
    const rows = out.join('').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((r) => r.template)).toEqual(['GET /healthz <*>', 'GET /healthz <*>', 'GET /readyz <*>']);
  });

  it('the CLI redacts each line before mining it, as the daemon does, unless told not to', async () => {
    const input = ['login ok user=alice password=opensesame', 'login ok user=bob password=opensesame', ''].join('\n');
    const r = await runCli(['logs', 'mine'], { input });
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { template: string });
    expect(rows).toHaveLength(2);
    expect(r.stdout).not.toContain('opensesame');
    expect(rows[0]!.template).toMatch(/password=\S*REDACTED/i);
    const plain = await runCli(['logs', 'mine', '--no-redact'], { input });
    expect(plain.stdout).toContain('password=opensesame');
  });

  it('prints nothing for empty input and stops quietly when the reader goes away', async () => {
    expect(await runMine([])).toEqual([]);
    const input = new PassThrough();
    const broken = new Writable({
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    broken.on('error', () => {});
    const done = mineStream(input, broken, { batchLines: 1 });
    input.write('a 1\nb 2\n');
    input.end('c 3\n');
    await expect(done).resolves.toBeUndefined();
  });
});
