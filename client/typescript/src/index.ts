/**
 * A typed Node client for codex-jobs-server, which runs Codex CLI jobs in the
 * background: start a job, follow or poll its output, wait for it (or for the first
 * of several), cancel it, and list or watch jobs.
 *
 * @example
 * ```js
 * import { Client } from "codex-jobs";
 * const client = new Client(); // CODEX_JOBS_ENDPOINT, CODEX_JOBS_TOKEN, ...
 * const job = await client.start("Summarise README.md", { cwd: process.cwd() });
 * console.log((await client.wait(job.id)).finalMessage);
 * ```
 *
 * @module
 */
export * from "./web.js";
export { Client } from "./node.js";
export { defaultEndpoint } from "./transport.js";
export type { ClientOptions } from "./transport.js";
