/** The contracts between the access hook and the ways a caller is recognised. */

/** Who is calling. */
export interface Identity {
  /** User name as Kubernetes reports it, the token's name, or `local socket`. */
  name: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
  /** How the caller was recognised. */
  via: 'kubernetes' | 'token-file' | 'socket' | 'none';
}

/** Why a request is refused: a status and a stable code for the JSON error. */
export interface Refusal {
  status: 401 | 403 | 503;
  code: 'UNAUTHENTICATED' | 'FORBIDDEN' | 'AUTH_UNAVAILABLE';
  message: string;
}

/** The answer of an authentication. */
export type AuthnResult = { ok: true; identity: Identity } | ({ ok: false } & Refusal);

/** The answer of an authorisation. */
export type AuthzResult = { ok: true } | ({ ok: false } & Refusal);

/** A way to recognise bearer tokens and decide what their holders may do. */
export interface Authenticator {
  /** Says who holds `token`. Never throws: errors are refusals. */
  authenticate(token: string): Promise<AuthnResult>;
  /** Says whether `identity` may use `verb` on `path`. Never throws: errors are refusals. */
  authorize(identity: Identity, path: string, verb: string): Promise<AuthzResult>;
}

/** An authenticator that cannot work (e.g. no usable kubeconfig): every caller gets 503 with the reason. */
export function refusingAll(reason: string): Authenticator {
  const refusal = { ok: false, status: 503, code: 'AUTH_UNAVAILABLE', message: `cannot check callers: ${reason}` } as const;
  return { authenticate: async () => refusal, authorize: async () => refusal };
}
