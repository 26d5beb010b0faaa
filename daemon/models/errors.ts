/** Errors of `nodesage model`: small named classes with stable codes, checked by `code`. */
import { CodedError } from '../errors.js';

/** A file's sha256 differs from the one expected; the file was not kept. */
export class DigestMismatchError extends CodedError {
  /** Stable error code. */
  readonly code = 'MODEL_DIGEST_MISMATCH';
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
    /** What happened to the file, for the message. */
    readonly action: string,
  ) {
    super(`sha256 mismatch for ${file}: expected ${expected}, got ${actual}; ${action}`);
  }
}

/** The server answered with a status that ends the transfer. */
export class PullHttpError extends CodedError {
  /** Stable error code. */
  readonly code = 'MODEL_PULL_HTTP';
  constructor(
    readonly url: string,
    readonly status: number,
  ) {
    super(`${url}: HTTP ${status}`);
  }
}

/** A model command was given something it cannot use (unknown id, not a GGUF file, bad digest). */
export class ModelInputError extends CodedError {
  /** Stable error code. */
  readonly code = 'MODEL_INPUT';
}
