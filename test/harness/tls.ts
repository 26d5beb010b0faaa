/**
 * Test certificates made at test time with the machine's `openssl` (node:crypto
 * cannot sign X.509 certificates): a throw-away CA and server certificates for
 * 127.0.0.1/localhost. Nothing is written to the repository.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A PEM certificate and its private key. */
export interface KeyPair {
  certPem: string;
  keyPem: string;
}

/** A self-signed test CA that can issue server certificates. */
export interface TestCa extends KeyPair {
  /** Issues a server certificate for the given names (IPs and DNS names). Defaults to 127.0.0.1, ::1, localhost. */
  issue(hosts?: string[]): KeyPair;
  /** Issues a client certificate (extendedKeyUsage clientAuth) with this common name and organisation. */
  issueClient(commonName: string, organization?: string): KeyPair;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Creates a new CA (EC P-256, valid two days). */
export function createTestCa(commonName = 'nodesage-test-ca'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'nodesage-ca-'));
  try {
    openssl(dir, [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${commonName}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const certPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const keyPem = readFileSync(join(dir, 'ca.key'), 'utf8');
    let serial = 1;
    const sign = (subject: string, ext: string): KeyPair => {
      const work = mkdtempSync(join(tmpdir(), 'nodesage-cert-'));
      try {
        writeFileSync(join(work, 'ca.crt'), certPem);
        writeFileSync(join(work, 'ca.key'), keyPem);
        writeFileSync(join(work, 'ext.cnf'), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n${ext}`);
        openssl(work, [
          'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
          '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', subject,
        ]);
        openssl(work, [
          'x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(serial++),
          '-out', 'leaf.crt', '-days', '2', '-extfile', 'ext.cnf',
        ]);
        return { certPem: readFileSync(join(work, 'leaf.crt'), 'utf8'), keyPem: readFileSync(join(work, 'leaf.key'), 'utf8') };
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    };
    return {
      certPem,
      keyPem,
      issue(hosts = ['127.0.0.1', '::1', 'localhost']): KeyPair {
        const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
        return sign(`/CN=${hosts[0] ?? 'localhost'}`, `extendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
      },
      issueClient(commonName: string, organization?: string): KeyPair {
        return sign(`${organization ? `/O=${organization}` : ''}/CN=${commonName}`, 'extendedKeyUsage=clientAuth\n');
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
