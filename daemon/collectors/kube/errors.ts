/**
 * Errors of the kubelet and API-server collectors, and how a failure is put in
 * plain words for `/v1/status`. Callers branch on `code` and on the HTTP status,
 * never on message text.
 */
import { CodedError } from '../../errors.js';

/** A non-success HTTP answer from the kubelet or the API server. */
export class HttpStatusError extends CodedError {
  readonly code = 'HTTP_STATUS';
  constructor(
    /** HTTP status code. */
    readonly status: number,
    /** Request path (no query), e.g. `/stats/summary`. */
    readonly path: string,
    /** The server's own explanation (a Status `message` or a short body), when it sent one. */
    readonly serverMessage?: string,
    /** Request method. Defaults to GET. */
    readonly method = 'GET',
  ) {
    super(`${method} ${path}: HTTP ${status}${serverMessage ? ` (${serverMessage})` : ''}`);
  }
}

/** The watch's resourceVersion is older than the server keeps (410 Gone): the client must relist. */
export class ResourceExpiredError extends CodedError {
  readonly code = 'RESOURCE_EXPIRED';
}

/** A credential file (service-account token, CA bundle, kubeconfig) is missing or unreadable. */
export class CredentialFileError extends CodedError {
  readonly code = 'CREDENTIAL_FILE';
  constructor(
    readonly path: string,
    readonly what: string,
    cause?: unknown,
  ) {
    super(`${what} ${path} cannot be read${cause instanceof Error && 'code' in cause ? ` (${String(cause.code)})` : ''}`, {
      cause,
    });
  }
}

/** A collector option that can never work (bad URL, missing node name). */
export class KubeSourceConfigError extends CodedError {
  readonly code = 'KUBE_SOURCE_CONFIG';
}

/** A failure put in plain words, and whether waiting can fix it. */
export interface DescribedFailure {
  /** One line for `lastError`. */
  message: string;
  /**
   * True when retrying will not help until someone changes something (RBAC,
   * token, CA, URL): the source shows `failing` rather than `stale`.
   */
  permanent: boolean;
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Every `code` (and `TimeoutError`/`AbortError` name) along an error's `cause` chain. */
export function errorCodes(err: unknown): string[] {
  const out: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; depth < 8 && cur && typeof cur === 'object'; depth++) {
    const e = cur as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof e.code === 'string') out.push(e.code);
    if (e.name === 'TimeoutError' || e.name === 'AbortError') out.push(e.name);
    cur = e.cause;
  }
  return out;
}

/** The TLS verification code in an error chain, if the failure was certificate verification. */
export function tlsFailureCode(err: unknown): string | undefined {
  return errorCodes(err).find((c) => TLS_CODES.has(c));
}

/** The network-level code in an error chain (refused, reset, unreachable, DNS). */
export function networkFailureCode(err: unknown): string | undefined {
  return errorCodes(err).find((c) => NETWORK_CODES.has(c));
}

/** True when the error is a request timeout (ours or the client library's). */
export function isTimeout(err: unknown): boolean {
  return errorCodes(err).includes('TimeoutError');
}

/** Shortens a server-provided text to one line for status output. */
export function oneLine(text: string, max = 200): string {
  const s = text.replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
