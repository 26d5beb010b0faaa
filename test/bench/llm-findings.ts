/**
 * Two real-shaped CrashLoop findings for the LLM benchmarks, as the crashloop
 * detector and the tracker write them (status lines, the kubelet's back-off
 * event, the container's last log lines before it exited; facts for the
 * prompt), 15 evidence lines each. Different workloads and log templates, so
 * the second is not a diagnosis-cache hit of the first.
 */
import { createHash } from 'node:crypto';

/** The tracked-finding shape the store keeps (structural copy of TrackedFinding). */
export interface BenchFinding {
  id: string;
  category: 'CrashLoop';
  severity: 'critical';
  subject: { kind: 'Container'; namespace: string; name: string; container: string };
  title: string;
  message: string;
  evidence: { source: 'podStatus' | 'event' | 'podLog'; at: string; text: string }[];
  firstSeen: string;
  lastSeen: string;
  count: number;
  status: 'open';
  causes: string[];
  rootCause: boolean;
  diagnosis: null;
  detector: string;
  lifecycle: 'condition';
  facts: Record<string, string | number | boolean>;
}

function id(namespace: string, pod: string, container: string): string {
  return createHash('sha256').update(`CrashLoop\u0000Container\u0000${namespace}\u0000${pod}\u0000${container}`).digest('hex').slice(0, 32);
}

const T = (s: string) => `2026-11-22T00:${s}Z`;

/** A Spring Boot service that cannot reach its database: exit code 1 after a stack trace. */
export function checkoutCrashLoop(): BenchFinding {
  const ns = 'shop';
  const pod = 'checkout-5c9d7b8f4-kq2xz';
  const c = 'checkout';
  const uid = '6f1c2b9e-3d4a-4e5f-8a7b-9c0d1e2f3a4b';
  const log = (at: string, text: string) => ({ source: 'podLog' as const, at: T(at), text });
  return {
    id: id(ns, pod, c),
    category: 'CrashLoop',
    severity: 'critical',
    subject: { kind: 'Container', namespace: ns, name: pod, container: c },
    title: `Container ${c} of ${ns}/${pod} is crash-looping (exit code 1, 7 restarts)`,
    message:
      `The container ${c} of pod ${ns}/${pod} is in CrashLoopBackOff after 7 restarts; last exit code 1 (Error) at ${T('31:19')}. ` +
      'Its log before exiting says: "org.postgresql.util.PSQLException: Connection to orders-db.shop.svc.cluster.local:5432 refused. ' +
      'Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.".',
    evidence: [
      { source: 'podStatus', at: T('31:19'), text: `container ${c} (restarts 7): last state terminated Error exit code 1, started ${T('31:02')}, finished ${T('31:19')}` },
      log('31:04', '2026-11-22 00:31:04.112  INFO 1 --- [           main] c.e.shop.checkout.CheckoutApplication    : Starting CheckoutApplication v2.14.3 using Java 17.0.9 with PID 1 (/app/checkout.jar started by app in /app)'),
      log('31:04', '2026-11-22 00:31:04.118  INFO 1 --- [           main] c.e.shop.checkout.CheckoutApplication    : The following 1 profile is active: "prod"'),
      log('31:09', '2026-11-22 00:31:09.402  INFO 1 --- [           main] o.s.b.w.embedded.tomcat.TomcatWebServer  : Tomcat initialized with port(s): 8080 (http)'),
      log('31:11', '2026-11-22 00:31:11.927  INFO 1 --- [           main] com.zaxxer.hikari.HikariDataSource       : HikariPool-1 - Starting...'),
      log('31:18', '2026-11-22 00:31:18.955 ERROR 1 --- [           main] com.zaxxer.hikari.pool.HikariPool        : HikariPool-1 - Exception during pool initialization.'),
      log('31:18', 'org.postgresql.util.PSQLException: Connection to orders-db.shop.svc.cluster.local:5432 refused. Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.'),
      log('31:18', '\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:342)'),
      log('31:18', '\tat org.postgresql.core.ConnectionFactory.openConnection(ConnectionFactory.java:54)'),
      log('31:18', '\tat org.postgresql.jdbc.PgConnection.<init>(PgConnection.java:263)'),
      log('31:18', 'Caused by: java.net.ConnectException: Connection refused'),
      log('31:19', "2026-11-22 00:31:19.004  WARN 1 --- [           main] ConfigServletWebServerApplicationContext : Exception encountered during context initialization - cancelling refresh attempt: org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'entityManagerFactory'"),
      log('31:19', '2026-11-22 00:31:19.087 ERROR 1 --- [           main] o.s.boot.SpringApplication               : Application run failed'),
      { source: 'podStatus', at: T('32:01'), text: `container ${c} (restarts 7): state waiting CrashLoopBackOff: back-off 5m0s restarting failed container=${c} pod=${pod}_${ns}(${uid})` },
      { source: 'event', at: T('36:40'), text: `BackOff: Back-off restarting failed container ${c} in pod ${pod}_${ns}(${uid}) (x23 over 41m)` },
    ],
    firstSeen: '2026-11-21T23:55:12Z',
    lastSeen: T('36:40'),
    count: 7,
    status: 'open',
    causes: [],
    rootCause: true,
    diagnosis: null,
    detector: 'crashloop',
    lifecycle: 'condition',
    facts: { restartCount: 7, restartsInWindow: 7, backOff: true, exitCode: 1, lastReason: 'Error', finishedAt: T('31:19') },
  };
}

/** A Go worker that panics on a nil pointer while loading its config: exit code 2. */
export function ingestCrashLoop(): BenchFinding {
  const ns = 'data';
  const pod = 'ingest-worker-6d8b9c7f5-p4wzl';
  const c = 'worker';
  const uid = '0b9e4c1a-7f2d-4a63-9e18-5d2c7b3f8a61';
  const log = (at: string, text: string) => ({ source: 'podLog' as const, at: T(at), text });
  return {
    id: id(ns, pod, c),
    category: 'CrashLoop',
    severity: 'critical',
    subject: { kind: 'Container', namespace: ns, name: pod, container: c },
    title: `Container ${c} of ${ns}/${pod} is crash-looping (exit code 2, 12 restarts)`,
    message:
      `The container ${c} of pod ${ns}/${pod} is in CrashLoopBackOff after 12 restarts; last exit code 2 (Error) at ${T('40:33')}. ` +
      'Its log before exiting says: "panic: runtime error: invalid memory address or nil pointer dereference".',
    evidence: [
      { source: 'podStatus', at: T('40:33'), text: `container ${c} (restarts 12): last state terminated Error exit code 2, started ${T('40:31')}, finished ${T('40:33')}` },
      log('40:31', '{"level":"info","ts":"2026-11-22T00:40:31.204Z","caller":"ingest/main.go:37","msg":"starting ingest-worker","version":"1.8.0","commit":"4e1f9a2"}'),
      log('40:31', '{"level":"info","ts":"2026-11-22T00:40:31.206Z","caller":"config/load.go:52","msg":"loading config","path":"/etc/ingest/config.yaml"}'),
      log('40:31', '{"level":"warn","ts":"2026-11-22T00:40:31.207Z","caller":"config/load.go:71","msg":"config key missing, using zero value","key":"sink.s3.bucket"}'),
      log('40:32', '{"level":"info","ts":"2026-11-22T00:40:32.011Z","caller":"kafka/consumer.go:88","msg":"connecting to kafka","brokers":"kafka-0.kafka.data.svc:9092","group":"ingest"}'),
      log('40:33', '{"level":"info","ts":"2026-11-22T00:40:33.145Z","caller":"kafka/consumer.go:112","msg":"partitions assigned","topic":"events","partitions":12}'),
      log('40:33', 'panic: runtime error: invalid memory address or nil pointer dereference'),
      log('40:33', '[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x9c4f21]'),
      log('40:33', 'goroutine 1 [running]:'),
      log('40:33', 'example.com/ingest/sink.(*S3Sink).Start(0x0, {0xc3a1e0, 0xc0001a2000})'),
      log('40:33', '\t/src/sink/s3.go:64 +0x21'),
      log('40:33', 'main.run({0xc3a1e0, 0xc0001a2000}, 0xc000132000)'),
      log('40:33', '\t/src/cmd/ingest/main.go:88 +0x3f5'),
      { source: 'podStatus', at: T('41:05'), text: `container ${c} (restarts 12): state waiting CrashLoopBackOff: back-off 5m0s restarting failed container=${c} pod=${pod}_${ns}(${uid})` },
      { source: 'event', at: T('45:51'), text: `BackOff: Back-off restarting failed container ${c} in pod ${pod}_${ns}(${uid}) (x51 over 1h12m)` },
    ],
    firstSeen: '2026-11-21T23:33:40Z',
    lastSeen: T('45:51'),
    count: 12,
    status: 'open',
    causes: [],
    rootCause: true,
    diagnosis: null,
    detector: 'crashloop',
    lifecycle: 'condition',
    facts: { restartCount: 12, restartsInWindow: 12, backOff: true, exitCode: 2, lastReason: 'Error', finishedAt: T('40:33') },
  };
}
