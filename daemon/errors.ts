/**
 * The base of nodesage's small named errors, after fastify's catalogue of
 * errors: callers branch on a stable `code`, never on the message text.
 */
export abstract class CodedError extends Error {
  /** Stable error code. */
  abstract readonly code: string;

  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
    // The subclass's own name, as logs and stack traces show it.
    this.name = new.target.name;
  }
}
