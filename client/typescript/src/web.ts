/**
 * The client without Node's transport, for a browser page (with Connect's gRPC-Web
 * transport) or any other Connect transport.
 *
 * @example
 * ```js
 * import { createGrpcWebTransport } from "@connectrpc/connect-web";
 * import { JobsClient } from "codex-jobs/web";
 * const client = new JobsClient(createGrpcWebTransport({ baseUrl: location.origin }));
 * ```
 *
 * @module
 */
export { JobsClient } from "./client.js";
export type {
  Applied,
  FollowEvent,
  FollowOptions,
  ListOptions,
  Page,
  PollOptions,
  PollResult,
  StartOptions,
  WaitAnyOptions,
  WaitOptions,
  WatchEvent,
  WatchOptions,
} from "./client.js";
export { JobsError } from "./errors.js";
export type { StatusCode } from "./errors.js";
export type {
  Change,
  FailureReason,
  FileChange,
  Job,
  JobState,
  OutputStream,
  ReasoningEffort,
  Sandbox,
  TokenUsage,
} from "./job.js";
