import { Code, ConnectError } from "@connectrpc/connect";

/** The gRPC status names, indexed by status code. */
const STATUS_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** A gRPC status name, such as `"NOT_FOUND"` or `"UNAUTHENTICATED"`. */
export type StatusCode = (typeof STATUS_NAMES)[number];

/**
 * An error from the server, or from reaching it.
 *
 * `code` is the gRPC status name and `message` what the server said, e.g.
 * `NOT_FOUND` / `no job with id ...`. The server's codes:
 * - `NOT_FOUND`: no job has that id
 * - `INVALID_ARGUMENT`: malformed id, empty or oversized prompt, bad offset, ...
 * - `PERMISSION_DENIED`: sandbox level above what the host allows
 * - `RESOURCE_EXHAUSTED`: the queue is full
 * - `UNAUTHENTICATED`: missing or wrong bearer token
 * - `UNAVAILABLE`: the server could not be reached, or a followed stream was lost
 */
export class JobsError extends Error {
  /** The gRPC status name. */
  readonly code: StatusCode;

  constructor(code: StatusCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "JobsError";
    this.code = code;
  }

  /**
   * Converts what an RPC threw; errors that are not from Connect pass through.
   * `closed`: the client was closed, which ends its calls.
   */
  static from(err: unknown, closed = false): unknown {
    if (err instanceof JobsError || !(err instanceof ConnectError)) {
      return err;
    }
    if (closed) {
      return new JobsError("CANCELLED", "the client was closed", { cause: err });
    }
    // Node reports a connection that failed or broke as INTERNAL (a missing
    // socket file, a TLS handshake refused) or as a reset stream, CANCELLED or
    // ABORTED; as in gRPC elsewhere, a server that cannot be reached is UNAVAILABLE.
    const broken =
      !sentByServer(err) &&
      (err.code === Code.Canceled || err.code === Code.Aborted || failedToConnect(err));
    const code = broken ? "UNAVAILABLE" : (STATUS_NAMES[err.code] ?? "UNKNOWN");
    return new JobsError(code, err.rawMessage, { cause: err });
  }
}

/** Whether the server sent this error: then it carries the `grpc-status` trailer. */
const sentByServer = (err: ConnectError): boolean => err.metadata.has("grpc-status");

/**
 * Whether a Connect error was caused by a Node error of the socket or TLS layer:
 * one with a string `code` such as ECONNREFUSED, ENOENT or ERR_SSL_... .
 */
function failedToConnect(err: ConnectError): boolean {
  let cause = err.cause;
  for (let depth = 0; cause instanceof Error && depth < 8; depth++, cause = cause.cause) {
    if (typeof (cause as { code?: unknown }).code === "string") {
      return true;
    }
  }
  return false;
}

/**
 * Whether reconnecting may cure `err`, an error of a call: the connection or the
 * server went away. Like the Rust client, that is UNAVAILABLE and UNKNOWN; and
 * any error that the server did not send, since Node reports a dropped connection
 * as a reset stream (CANCELLED, ABORTED or INTERNAL).
 */
export function isRetryable(err: unknown): boolean {
  return (
    err instanceof ConnectError &&
    (err.code === Code.Unavailable || err.code === Code.Unknown || !sentByServer(err))
  );
}
