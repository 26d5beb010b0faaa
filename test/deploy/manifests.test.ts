/**
 * The DaemonSet manifests as an operator gets them: every overlay rendered by
 * the real `kubectl kustomize`, every object checked against the Kubernetes
 * schema, and the security promises of the product checked on the result
 * (least-privilege RBAC, no privileged pod, read-only host mounts, egress
 * locked down, the shipped config accepted by the daemon's own loader).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_EMBEDDED_LOG_FILES } from '../../daemon/collectors/journald.js';
import { registeredRoutes } from '../../daemon/api/auth/access.js';
import { ACCESS_ROLES, OPEN_PATHS, verbFor } from '../../daemon/api/auth/policy.js';
import { assertListenProtected, loadConfig } from '../../daemon/config.js';
import { createLogger } from '../../daemon/logger.js';
import { createDaemon } from '../../daemon/main.js';
import { readCatalog } from '../../daemon/models/catalog.js';
import { type K8sObject, kubectlVersions, render, renderWith, repoRoot } from '../helpers/k8s-schema-deploy.js';
import { validateObject } from '../helpers/k8s-schema.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

const OVERLAYS = ['overlays/cpu', 'overlays/nvidia', 'overlays/airgap'] as const;
/** Model delivery methods besides the pre-staged hostPath of overlays/airgap. */
const MODEL_COMPONENTS = ['model-image-init', 'model-image-volume', 'model-pvc'] as const;
const renders = new Map<string, K8sObject[]>();

beforeAll(() => {
  const v = kubectlVersions();
  // kustomize v4+ is needed for `labels:` and Components; Debian's own
  // kubernetes-client 1.20 embeds v2 and cannot render these folders.
  expect(Number(/^v?(\d+)/.exec(v.kustomize)?.[1] ?? 0), `kustomize ${v.kustomize} in kubectl ${v.client}`).toBeGreaterThanOrEqual(4);
  renders.set('base', render('daemonset/base'));
  for (const o of OVERLAYS) renders.set(o, render(`daemonset/${o}`));
  renders.set('cpu+exporters', renderWith(['daemonset/overlays/cpu'], ['daemonset/components/exporters']));
  renders.set('cpu+kmsg-privileged', renderWith(['daemonset/overlays/cpu'], ['daemonset/components/kmsg-privileged']));
  renders.set('cpu+k3s-logs+rke2-logs', renderWith(['daemonset/overlays/cpu'], ['daemonset/components/k3s-logs', 'daemonset/components/rke2-logs']));
  for (const m of MODEL_COMPONENTS) renders.set(`cpu+${m}`, renderWith(['daemonset/overlays/cpu'], [`daemonset/components/${m}`]));
  renders.set('cpu+site-backend', renderWith(['daemonset/overlays/cpu'], ['daemonset/components/site-backend']));
}, 120_000);

/** The renders that operators get by default (every opt-in component left out). */
const DEFAULT_RENDERS = ['base', ...OVERLAYS, 'cpu+exporters'];
/** Every render the product's promises are checked on: the defaults and each model delivery method. */
const POLICY_RENDERS = [...DEFAULT_RENDERS, ...MODEL_COMPONENTS.map((m) => `cpu+${m}`)];
/** Opt-in components that widen what the pod may do; checked on their own. */
const OPT_IN_RENDERS = ['cpu+kmsg-privileged', 'cpu+site-backend'];

const get = (name: string): K8sObject[] => {
  const r = renders.get(name);
  if (!r) throw new Error(`no render ${name}`);
  return r;
};
const ofKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
const one = (objs: K8sObject[], kind: string, name?: string): K8sObject => {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0]!;
};
// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is plain data.
type Any = any;
const containersOf = (ds: K8sObject): Any[] => [...(ds.spec.template.spec.initContainers ?? []), ...ds.spec.template.spec.containers];
const selects = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

describe('every rendered object passes the Kubernetes schema', () => {
  it.each([...POLICY_RENDERS, ...OPT_IN_RENDERS, 'cpu+k3s-logs+rke2-logs'])('%s', (name) => {
    const objs = get(name);
    expect(objs.length).toBeGreaterThan(5);
    for (const o of objs) {
      expect(validateObject(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
    }
  });

  it('the schema check rejects a misspelt field, a wrong type and a missing required field', () => {
    const ds = structuredClone(one(get('overlays/cpu'), 'DaemonSet'));
    ds.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
    ds.spec.template.spec.containers[0].ports[0].containerPort = '8877';
    delete ds.spec.selector;
    const errors = validateObject(ds);
    expect(errors.map((e) => e.path).sort()).toEqual([
      '/spec/selector',
      '/spec/template/spec/containers/0/ports/0/containerPort',
      '/spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem',
    ]);
  });
});

describe('RBAC is least-privilege', () => {
  const rules = (objs: K8sObject[]): Any[] =>
    [...ofKind(objs, 'ClusterRole'), ...ofKind(objs, 'Role')].flatMap((r) => r.rules ?? []);

  it.each(POLICY_RENDERS)('%s: no nodes/proxy, no wildcard, no secrets', (name) => {
    for (const rule of rules(get(name))) {
      expect(rule.resources ?? []).not.toContain('nodes/proxy');
      expect(rule.resources ?? []).not.toContain('secrets');
      for (const field of ['apiGroups', 'resources', 'verbs', 'nonResourceURLs']) expect(rule[field] ?? []).not.toContain('*');
    }
  });

  it('the agent reads only: nodes, node stats/pods/healthz via the kubelet, pods and events', () => {
    const role = one(get('overlays/cpu'), 'ClusterRole', 'nodesage');
    const grants = role.rules.flatMap((r: Any) =>
      r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${r.apiGroups.join(',')}/${res}:${v}`)),
    );
    expect(grants.sort()).toEqual(
      [
        '/events:list',
        '/events:watch',
        '/nodes/healthz:get',
        '/nodes/pods:get',
        '/nodes/stats:get',
        '/nodes:get',
        '/nodes:list',
        '/nodes:watch',
        '/pods:list',
        '/pods:watch',
      ].sort(),
    );
    // Writes on API objects; the access roles' `create` on /v1/ask is an HTTP POST to the agent, not a write.
    const writes = rules(get('overlays/cpu')).filter(
      (r) => r.resources && r.verbs.some((v: string) => ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(v)),
    );
    expect(writes).toEqual([]);
  });

  it('the exporters component adds exactly events create/patch and nodes/status patch, bound to the agent', () => {
    const objs = get('cpu+exporters');
    const role = one(objs, 'ClusterRole', 'nodesage-exporters');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
      { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
    ]);
    const binding = one(objs, 'ClusterRoleBinding', 'nodesage-exporters');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'nodesage-exporters' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'nodesage', namespace: 'nodesage' }]);
  });

  it.each(POLICY_RENDERS)('%s: bindings name the ServiceAccount the DaemonSets run as', (name) => {
    const objs = get(name);
    const sa = one(objs, 'ServiceAccount');
    for (const b of ofKind(objs, 'ClusterRoleBinding')) {
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
      // system:auth-delegator is built into every cluster (tokenreviews and subjectaccessreviews create).
      expect([...ofKind(objs, 'ClusterRole').map((r) => r.metadata.name), 'system:auth-delegator']).toContain(b.roleRef.name);
    }
    expect(one(objs, 'ClusterRoleBinding', 'nodesage-auth-delegator').roleRef.name).toBe('system:auth-delegator');
    for (const ds of ofKind(objs, 'DaemonSet')) expect(ds.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
  });
});

describe('the pod is locked down', () => {
  it.each(POLICY_RENDERS)('%s', (name) => {
    const daemonSets = ofKind(get(name), 'DaemonSet');
    expect(daemonSets.length).toBeGreaterThan(0);
    for (const ds of daemonSets) {
      const pod = ds.spec.template.spec;
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.hostPID ?? false).toBe(false);
      expect(pod.hostIPC ?? false).toBe(false);
      expect(pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
      for (const c of containersOf(ds)) {
        const sc = c.securityContext;
        expect(sc.privileged ?? false, c.name).toBe(false);
        expect(sc.allowPrivilegeEscalation).toBe(false);
        expect(sc.readOnlyRootFilesystem).toBe(true);
        expect(sc.capabilities.drop).toEqual(['ALL']);
        // SYSLOG is for the agent's /dev/kmsg; an init container gets no capability at all.
        const isInit = (pod.initContainers ?? []).includes(c);
        expect(sc.capabilities.add ?? [], c.name).toEqual(isInit ? [] : ['SYSLOG']);
        expect(c.resources.limits.cpu, 'cpu limit (also the model thread count)').toBeTruthy();
        expect(c.resources.limits.memory).toBeTruthy();
        expect(c.resources.requests.cpu).toBeTruthy();
        expect(c.resources.requests.memory).toBeTruthy();
      }
    }
  });

  it.each(POLICY_RENDERS)('%s: every hostPath mount is read-only except /var/lib/nodesage', (name) => {
    for (const ds of ofKind(get(name), 'DaemonSet')) {
      const volumes = new Map<string, Any>(ds.spec.template.spec.volumes.map((v: Any) => [v.name, v]));
      let writableHostPaths = 0;
      for (const c of containersOf(ds)) {
        for (const m of c.volumeMounts) {
          const v = volumes.get(m.name);
          expect(v, `volume ${m.name}`).toBeDefined();
          if (!v.hostPath) continue;
          if (v.hostPath.path === '/var/lib/nodesage') {
            expect(m.mountPath).toBe('/var/lib/nodesage');
            writableHostPaths++;
          } else {
            expect(m.readOnly, `${m.mountPath} (${v.hostPath.path})`).toBe(true);
          }
        }
      }
      expect(writableHostPaths).toBe(1);
      // A read-only root filesystem needs a writable /tmp, and it must not be the host's.
      const tmp = ds.spec.template.spec.containers[0].volumeMounts.find((m: Any) => m.mountPath === '/tmp');
      expect(volumes.get(tmp.name).emptyDir).toBeDefined();
    }
  });

  it('the k3s and RKE2 log components mount only the embedded log folders, read-only, where the journald collector looks', () => {
    const ds = one(get('cpu+k3s-logs+rke2-logs'), 'DaemonSet');
    const volumes = new Map<string, Any>(ds.spec.template.spec.volumes.map((v: Any) => [v.name, v]));
    const rancher = ds.spec.template.spec.containers[0].volumeMounts.filter((m: Any) => m.mountPath.startsWith('/host/var/lib/rancher'));
    expect(rancher.map((m: Any) => [m.mountPath, m.readOnly, volumes.get(m.name).hostPath.path])).toEqual([
      ['/host/var/lib/rancher/k3s/agent/containerd', true, '/var/lib/rancher/k3s/agent/containerd'],
      ['/host/var/lib/rancher/rke2/agent/logs', true, '/var/lib/rancher/rke2/agent/logs'],
      ['/host/var/lib/rancher/rke2/agent/containerd', true, '/var/lib/rancher/rke2/agent/containerd'],
    ]);
    for (const f of DEFAULT_EMBEDDED_LOG_FILES) expect(rancher.some((m: Any) => `/host/${f.path}`.startsWith(`${m.mountPath}/`)), f.path).toBe(true);
  });

  it('the opt-in kmsg component is the only way to a privileged pod, and stays valid for the API', () => {
    const objs = get('cpu+kmsg-privileged');
    const sc = one(objs, 'DaemonSet').spec.template.spec.containers[0].securityContext;
    expect(sc.privileged).toBe(true);
    // The API rejects privileged: true with allowPrivilegeEscalation: false.
    expect(sc.allowPrivilegeEscalation).toBe(true);
    for (const o of OVERLAYS) {
      const kustomization = readFileSync(join(repoRoot, 'daemonset', o, 'kustomization.yaml'), 'utf8');
      expect(kustomization).not.toMatch(/kmsg-privileged/);
    }
  });
});

describe('the DaemonSet runs one agent per node', () => {
  it.each(POLICY_RENDERS)('%s: scheduling, updates and probes', (name) => {
    const objs = get(name);
    for (const ds of ofKind(objs, 'DaemonSet')) {
      const pod = ds.spec.template.spec;
      expect(selects(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels)).toBe(true);
      expect(pod.priorityClassName).toBe('system-node-critical');
      expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
      expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } });
      const c = pod.containers[0];
      expect(c.args).toEqual(['daemon']);
      const port = c.ports.find((p: Any) => p.containerPort === 8877);
      expect(port?.name).toBe('http');
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      const env = new Map<string, Any>(c.env.map((e: Any) => [e.name, e]));
      expect(env.get('NODE_NAME').valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
      expect(env.get('NODE_IP').valueFrom.fieldRef.fieldPath).toBe('status.hostIP');
    }
    // system-node-critical outside kube-system needs a quota for that class on some distributions.
    const quota = one(objs, 'ResourceQuota');
    expect(quota.spec.scopeSelector.matchExpressions[0]).toMatchObject({ scopeName: 'PriorityClass', values: ['system-node-critical'] });
  });

  it.each(POLICY_RENDERS)('%s: everything lives in the nodesage namespace, which admits hostPath pods', (name) => {
    const objs = get(name);
    const ns = one(objs, 'Namespace');
    expect(ns.metadata.name).toBe('nodesage');
    expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
    for (const o of objs) {
      if (['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) continue;
      expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('nodesage');
    }
  });

  it('cpu: the image is the release named in package.json', () => {
    expect(one(get('overlays/cpu'), 'DaemonSet').spec.template.spec.containers[0].image).toBe(`nodesage/nodesage:${version}`);
  });

  it('nvidia: GPU nodes get the CUDA agent, every other node the CPU agent, never both', () => {
    const objs = get('overlays/nvidia');
    const cpu = one(objs, 'DaemonSet', 'nodesage');
    const gpu = one(objs, 'DaemonSet', 'nodesage-nvidia');
    // Disjoint selectors: neither controller claims the other's pods.
    expect(selects(cpu.spec.selector.matchLabels, gpu.spec.template.metadata.labels)).toBe(false);
    expect(selects(gpu.spec.selector.matchLabels, cpu.spec.template.metadata.labels)).toBe(false);
    const term = (ds: K8sObject) =>
      ds.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    expect(term(gpu)).toEqual([{ matchExpressions: [{ key: 'nvidia.com/gpu.present', operator: 'In', values: ['true'] }] }]);
    expect(term(cpu)).toEqual([{ matchExpressions: [{ key: 'nvidia.com/gpu.present', operator: 'NotIn', values: ['true'] }] }]);

    const g = gpu.spec.template.spec;
    expect(g.runtimeClassName).toBe('nvidia');
    expect(cpu.spec.template.spec.runtimeClassName).toBeUndefined();
    const c = g.containers[0];
    expect(c.image).toBe(`nodesage/nodesage:${version}-cuda`);
    expect(c.env).toContainEqual({ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' });
    expect(c.env).toContainEqual({ name: 'NVIDIA_DRIVER_CAPABILITIES', value: 'compute,utility' });
    // Shared, never exclusive: no GPU is taken away from the workloads.
    expect(JSON.stringify(c.resources)).not.toMatch(/nvidia\.com\/gpu/);
    expect(cpu.spec.template.spec.containers[0].image).toBe(`nodesage/nodesage:${version}`);
    // Same config, state folder and host view as the CPU agent.
    expect(g.volumes).toEqual(cpu.spec.template.spec.volumes);
    expect(c.volumeMounts).toEqual(cpu.spec.template.spec.containers[0].volumeMounts);
    // The Service reaches both agents.
    const svc = one(objs, 'Service');
    expect(selects(svc.spec.selector, gpu.spec.template.metadata.labels)).toBe(true);
    expect(selects(svc.spec.selector, cpu.spec.template.metadata.labels)).toBe(true);
  });

  it('airgap: site registry image and a read-only staged model that NODESAGE_MODEL points into', () => {
    const ds = one(get('overlays/airgap'), 'DaemonSet');
    const c = ds.spec.template.spec.containers[0];
    expect(c.image).toBe(`registry.example.internal/nodesage/nodesage:${version}`);
    const model = c.env.find((e: Any) => e.name === 'NODESAGE_MODEL')?.value as string;
    expect(model).toMatch(/\.gguf$/);
    const mount = c.volumeMounts.find((m: Any) => model.startsWith(`${m.mountPath}/`) && m.mountPath !== '/var/lib/nodesage');
    expect(mount?.readOnly).toBe(true);
    const vol = ds.spec.template.spec.volumes.find((v: Any) => v.name === mount.name);
    expect(vol.hostPath.path).toBe(mount.mountPath);
  });
});

describe('model delivery: every method mounts a read-only models folder that NODESAGE_MODEL resolves into', () => {
  const catalogIds = readCatalog().map((m) => m.id);
  const modelsMount = (name: string) => {
    const ds = one(get(name), 'DaemonSet');
    const c = ds.spec.template.spec.containers[0];
    const id = c.env.find((e: Any) => e.name === 'NODESAGE_MODEL')?.value as string;
    const mount = c.volumeMounts.find((m: Any) => m.mountPath === '/var/lib/nodesage/models');
    const volume = ds.spec.template.spec.volumes.find((v: Any) => v.name === mount?.name);
    return { ds, c, id, mount, volume };
  };

  it.each(MODEL_COMPONENTS.map((m) => `cpu+${m}`))('%s: a catalog id, resolved under the read-only mount', (name) => {
    const { id, mount } = modelsMount(name);
    expect(catalogIds).toContain(id);
    expect(mount.readOnly).toBe(true);
    const config = loadConfig({ env: { NODE_NAME: 'edge-node-1', NODESAGE_MODEL: id }, serviceAccountDir: '/nonexistent' });
    expect(config.model?.startsWith(`${mount.mountPath}/`)).toBe(true);
  });

  it('init container: the model image checks the sidecar before copying into a pod-local folder, unprivileged', () => {
    const { ds, volume } = modelsMount('cpu+model-image-init');
    expect(volume.emptyDir.sizeLimit).toBeTruthy();
    const init = ds.spec.template.spec.initContainers.find((c: Any) => c.name === 'model-copy');
    expect(init.image).toMatch(/^nodesage\/model:/);
    const script = init.command.join(' ');
    expect(script.indexOf('sha256sum -c')).toBeGreaterThan(-1);
    expect(script.indexOf('sha256sum -c')).toBeLessThan(script.indexOf(' cp '));
    expect(init.volumeMounts).toEqual([{ name: volume.name, mountPath: '/models' }]);
  });

  it('image volume: the model image is mounted, and `images:` renames it like a container image', () => {
    const { volume } = modelsMount('cpu+model-image-volume');
    expect(volume.image).toEqual({ reference: expect.stringMatching(/^nodesage\/model:/), pullPolicy: 'IfNotPresent' });
    const renamed = renderWith(['daemonset/overlays/cpu'], ['daemonset/components/model-image-volume'], ['  - name: nodesage/model', '    newName: registry.example.internal/nodesage/model']);
    const v = one(renamed, 'DaemonSet').spec.template.spec.volumes.find((x: Any) => x.name === volume.name);
    expect(v.image.reference).toMatch(/^registry\.example\.internal\/nodesage\/model:/);
  });

  it('PVC: one ReadOnlyMany claim in the namespace, mounted read-only', () => {
    const { volume } = modelsMount('cpu+model-pvc');
    const pvc = one(get('cpu+model-pvc'), 'PersistentVolumeClaim', volume.persistentVolumeClaim.claimName);
    expect(pvc.metadata.namespace).toBe('nodesage');
    expect(pvc.spec.accessModes).toEqual(['ReadOnlyMany']);
    expect(volume.persistentVolumeClaim.readOnly).toBe(true);
  });
});

describe('the opt-in site backend component', () => {
  it('configures the daemon for the backend and opens egress only to it and to the cluster DNS', () => {
    const objs = get('cpu+site-backend');
    const ds = one(objs, 'DaemonSet');
    const c = ds.spec.template.spec.containers[0];
    const env = Object.fromEntries(c.env.filter((e: Any) => e.value !== undefined).map((e: Any) => [e.name, e.value]));
    expect(env.NODESAGE_MODEL).toBeUndefined();
    const config = loadConfig({ env: { ...env, NODESAGE_CONFIG: undefined, NODE_NAME: 'edge-node-1' }, serviceAccountDir: '/nonexistent' });
    expect(config.llm.backend).toEqual({ url: 'https://llm.site.internal/v1', model: null, caFile: '/etc/nodesage/site-backend/ca.crt', tokenFile: '/etc/nodesage/site-backend/token' });
    const mount = c.volumeMounts.find((m: Any) => m.mountPath === '/etc/nodesage/site-backend');
    expect(mount.readOnly).toBe(true);
    const extra = one(objs, 'NetworkPolicy', 'nodesage-site-backend');
    expect(extra.metadata.namespace).toBe('nodesage');
    expect(extra.spec.policyTypes).toEqual(['Egress']);
    const ports = extra.spec.egress.flatMap((r: Any) => r.ports.map((p: Any) => `${p.protocol}/${p.port}`)).sort();
    expect(ports).toEqual(['TCP/443', 'TCP/53', 'UDP/53']);
    const dns = extra.spec.egress.find((r: Any) => r.ports.some((p: Any) => p.port === 53));
    expect(dns.to).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }]);
  });

  it('is in no shipped overlay: nothing leaves the node unless an operator adds it', () => {
    for (const o of OVERLAYS) expect(readFileSync(join(repoRoot, 'daemonset', o, 'kustomization.yaml'), 'utf8')).not.toMatch(/site-backend/);
  });
});

describe('network: node-local service, egress only to the API server and kubelet', () => {
  it.each(POLICY_RENDERS)('%s', (name) => {
    const objs = get(name);
    const svc = one(objs, 'Service');
    expect(svc.spec.internalTrafficPolicy).toBe('Local');
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 8877, targetPort: 'http', protocol: 'TCP' }]);

    const np = one(objs, 'NetworkPolicy');
    for (const ds of ofKind(objs, 'DaemonSet')) {
      expect(selects(np.spec.podSelector.matchLabels, ds.spec.template.metadata.labels), ds.metadata.name).toBe(true);
    }
    expect(np.spec.policyTypes).toEqual(expect.arrayContaining(['Ingress', 'Egress']));
    expect(np.spec.egress.length).toBeGreaterThan(0);
    const egressPorts = new Set<number>();
    for (const rule of np.spec.egress) {
      // A rule without `to` or without `ports` would allow every destination or port.
      expect(rule.to?.length).toBeGreaterThan(0);
      expect(rule.ports?.length).toBeGreaterThan(0);
      for (const peer of rule.to) {
        expect(peer.ipBlock, 'egress peers are address blocks, not all pods/namespaces').toBeDefined();
        expect(['0.0.0.0/0', '::/0']).not.toContain(peer.ipBlock.cidr);
        expect(peer.ipBlock.cidr).toMatch(/^(10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.|f[cd])/);
      }
      for (const p of rule.ports) egressPorts.add(p.port);
    }
    expect([...egressPorts].sort()).toEqual([10250, 443, 6443]);
    // No DNS: the agent connects to IPs it is given (API server env, NODE_IP).
    expect(egressPorts.has(53)).toBe(false);
    // Ingress names who may connect: Prometheus's namespace (overlays add their callers' namespaces).
    expect(np.spec.ingress).toEqual([
      { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 8877, protocol: 'TCP' }] },
    ]);
    for (const rule of np.spec.ingress) expect(rule.from?.length, 'an ingress rule without `from` admits every pod').toBeGreaterThan(0);
  });
});

describe('the shipped configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodesage-deploy-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Loads the ConfigMap's file with the daemon's own loader, in the pod's environment. */
  const loadShipped = (objs: K8sObject[]) => {
    const ds = one(objs, 'DaemonSet', 'nodesage');
    const c = ds.spec.template.spec.containers[0];
    const configPath = c.env.find((e: Any) => e.name === 'NODESAGE_CONFIG').value as string;
    const mount = c.volumeMounts.find((m: Any) => configPath.startsWith(`${m.mountPath}/`));
    const volume = ds.spec.template.spec.volumes.find((v: Any) => v.name === mount.name);
    const cm = one(objs, 'ConfigMap', volume.configMap.name);
    const key = configPath.slice(mount.mountPath.length + 1);
    expect(Object.keys(cm.data), `key ${key} of ConfigMap ${cm.metadata.name}`).toContain(key);
    const file = join(dir, `${cm.metadata.name}.yaml`);
    writeFileSync(file, cm.data[key]);
    const config = loadConfig({
      env: { NODESAGE_CONFIG: file, NODE_NAME: 'edge-node-1', NODE_IP: '10.0.0.5' },
      serviceAccountDir: join(dir, 'no-service-account'),
    });
    return { ds, c, config };
  };

  it.each(POLICY_RENDERS)('%s: the daemon accepts it, and its paths are the mounted ones', (name) => {
    const { ds, c, config } = loadShipped(get(name));
    expect(config.nodeName).toBe('edge-node-1');
    expect(config.kubeletUrl).toBe('https://10.0.0.5:10250');
    expect(config.listen).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 8877 });
    expect(config.dataDir).toBe('/var/lib/nodesage');
    expect(config.hostRoot).toBe('/host');
    const mounts = new Map<string, Any>(c.volumeMounts.map((m: Any) => [m.mountPath, m]));
    expect(mounts.get(config.dataDir)).toBeDefined();
    expect(mounts.get(config.runbooksDir!)).toBeDefined();
    // Every host folder the agent sees sits at hostRoot + its host path.
    const volumes = new Map<string, Any>(ds.spec.template.spec.volumes.map((v: Any) => [v.name, v]));
    for (const m of c.volumeMounts) {
      const hp = volumes.get(m.name).hostPath;
      if (hp && !hp.path.startsWith('/var/lib/nodesage')) expect(m.mountPath).toBe(`${config.hostRoot}${hp.path}`);
    }
    // What the collectors read under hostRoot, including the journald collector's syslog fallback.
    const read = ['/var/log/pods', '/var/log/journal', '/run/log/journal', '/var/log/syslog', '/var/log/messages', '/dev/kmsg', '/proc', '/sys', '/etc/machine-id'];
    for (const path of read) {
      const covered = c.volumeMounts.some((m: Any) => `${config.hostRoot}${path}`.startsWith(m.mountPath) && m.mountPath.startsWith(config.hostRoot));
      expect(covered, `${path} visible under ${config.hostRoot}`).toBe(true);
    }
  });

  it.each(DEFAULT_RENDERS)('%s: in the pod, callers are checked with the API server and the listener is protected', (name) => {
    const objs = get(name);
    const ds = one(objs, 'DaemonSet', 'nodesage');
    const c = ds.spec.template.spec.containers[0];
    const configPath = c.env.find((e: Any) => e.name === 'NODESAGE_CONFIG').value as string;
    const mount = c.volumeMounts.find((m: Any) => configPath.startsWith(`${m.mountPath}/`));
    const cm = one(objs, 'ConfigMap', ds.spec.template.spec.volumes.find((v: Any) => v.name === mount.name).configMap.name);
    const file = join(dir, `${cm.metadata.name}-pod.yaml`);
    writeFileSync(file, cm.data[configPath.slice(mount.mountPath.length + 1)]);
    const sa = join(dir, 'serviceaccount');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'token');
    const config = loadConfig({ env: { NODESAGE_CONFIG: file, NODE_NAME: 'edge-node-1', KUBERNETES_SERVICE_HOST: '10.96.0.1' }, serviceAccountDir: sa });
    expect(config.mode).toBe('in-cluster');
    expect(config.auth.mode).toBe('kubernetes');
    expect(config.auth.socket).toBe(true);
    expect(() => assertListenProtected(config)).not.toThrow();
    // The same listener without auth would be refused, naming the key.
    expect(() => assertListenProtected({ ...config, auth: { ...config.auth, mode: 'none' } })).toThrow(/auth\.mode/);
  });

  it('exporters stay off by default and the component turns both on', () => {
    expect(loadShipped(get('overlays/cpu')).config.exporters).toEqual({ conditions: false, events: false });
    expect(loadShipped(get('cpu+exporters')).config.exporters).toEqual({ conditions: true, events: true });
  });

  it('the two config files differ only in the exporters block', () => {
    const base = readFileSync(join(repoRoot, 'daemonset/base/config.yaml'), 'utf8').split('\n');
    const exp = readFileSync(join(repoRoot, 'daemonset/components/exporters/config.yaml'), 'utf8').split('\n');
    expect(exp).toHaveLength(base.length);
    const differing = base.map((l, i) => [l, exp[i]]).filter(([a, b]) => a !== b);
    expect(differing).toEqual([
      ['  conditions: false', '  conditions: true'],
      ['  events: false', '  events: true'],
    ]);
  });
});

describe('the access ClusterRoles grant exactly what the daemon checks', () => {
  const ACCESS_ROLE_NAMES = ACCESS_ROLES.map((r) => r.name);
  /** RBAC's match of a non-resource URL rule (exact, or a trailing * as a prefix). */
  const matches = (rule: string, path: string) => rule === path || (rule.endsWith('*') && path.startsWith(rule.slice(0, -1)));

  it.each(DEFAULT_RENDERS)('%s: the rendered roles are the daemon list', (name) => {
    const rendered = ofKind(get(name), 'ClusterRole')
      .filter((r) => ACCESS_ROLE_NAMES.includes(r.metadata.name))
      .map((r) => ({ name: r.metadata.name, rules: r.rules.map((x: Any) => ({ verbs: x.verbs, nonResourceURLs: x.nonResourceURLs })) }));
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    expect(rendered.sort(byName)).toEqual(ACCESS_ROLES.map((r) => ({ name: r.name, rules: r.rules })).sort(byName));
    // No role is bound by default: operators grant access with their own bindings.
    for (const b of ofKind(get(name), 'ClusterRoleBinding')) expect(ACCESS_ROLE_NAMES).not.toContain(b.roleRef.name);
  });

  it("every route of the daemon is either open or granted by a shipped role, for its method's verb", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodesage-routes-'));
    const config = loadConfig({ env: { NODESAGE_DATA_DIR: dir, NODE_NAME: 'edge-node-1' }, serviceAccountDir: join(dir, 'none') });
    const daemon = await createDaemon(config, createLogger({ ...config, logLevel: 'silent' }));
    try {
      await daemon.api.ready();
      const routes = registeredRoutes(daemon.api).filter((r) => r.method !== 'HEAD' && !OPEN_PATHS.includes(r.url));
      expect(routes.map((r) => `${r.method} ${r.url}`)).toEqual(expect.arrayContaining(['GET /v1/status', 'GET /v1/findings/:id', 'POST /v1/ask', 'POST /v1/chat/completions', 'GET /metrics']));
      const ungranted = routes.filter((r) => {
        const sample = r.url.replace(/:[A-Za-z]+/g, 'x');
        return !ACCESS_ROLES.some((role) => role.rules.some((rule) => rule.verbs.includes(verbFor(r.method)) && rule.nonResourceURLs.some((u) => matches(u, sample))));
      });
      expect(ungranted, 'routes no shipped ClusterRole grants: add them to ACCESS_ROLES (daemon/api/auth/policy.ts) and daemonset/base/access-roles.yaml').toEqual([]);
      for (const role of ACCESS_ROLES) {
        for (const rule of role.rules) for (const u of rule.nonResourceURLs) expect(u).toMatch(/^\/(v1\/|metrics$|mcp$)/);
      }
    } finally {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
