import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  type Client as RpcClient,
  type Transport,
} from "@connectrpc/connect";
import { JobsError, isRetryable } from "./errors.js";
import { CodexJobs, Isolation, PollRequestSchema } from "./gen/codex/jobs/v1/jobs_pb.js";
import {
  reasoningEffortToPb,
  sandboxToPb,
  stateToPb,
  streamToPb,
  toJob,
  toUint64,
  type Job,
  type JobState,
  type OutputStream,
  type ReasoningEffort,
  type Sandbox,
} from "./job.js";

/** What to run, besides the prompt. */
export interface StartOptions {
  /** Absolute path of an existing directory to run Codex in. */
  cwd: string;
  /** Model passed to Codex as `-m`; default: Codex's own. */
  model?: string;
  /** Default: `read-only`. The host refuses levels above its maximum. */
  sandbox?: Sandbox;
  /** Wall-clock limit in seconds; default: the server's. */
  timeout?: number;
  /** Free-form labels to filter `list` by. */
  labels?: Record<string, string>;
  /** Idempotency key: a retry with the same id returns the job it first created. */
  requestId?: string;
  /** Continue this Codex thread (a job's `threadId`) instead of starting a new one. */
  resumeThreadId?: string;
  /** How hard the model reasons; default: Codex's own. */
  reasoningEffort?: ReasoningEffort;
  /** The pool of job hosts that may run it; default: `default`. */
  pool?: string;
  /** The one job host that may run it, for a cwd that exists only there. */
  host?: string;
  /**
   * Run in a git worktree of its own (the cwd must be in a repository), so that
   * `diff` and `apply` take its change.
   */
  worktree?: boolean;
  /** With `worktree`: the commit, branch or tag to start at; default HEAD. */
  base?: string;
}

/** What `apply` did to the checkout. */
export interface Applied {
  job: Job;
  /** The top of the checkout the change went into. */
  checkout: string;
  /** The files it changed there, left uncommitted. */
  files: string[];
}

/** Which output `poll` returns; neither `tailLines` nor `sinceOffset`: none. */
export interface PollOptions {
  /** The last N lines of the log (0-10000). */
  tailLines?: number;
  /** Everything from this byte offset on (at most the log's size). */
  sinceOffset?: number;
  /** The most bytes to return (1 - 4 MiB); default 256 KiB. */
  maxBytes?: number;
  /** Default: the transcript. */
  stream?: OutputStream;
}

/** A job and a window of its output: bytes `[startOffset, nextOffset)` of the log. */
export interface PollResult {
  job: Job;
  output: Uint8Array;
  /** `output` decoded as UTF-8. */
  text: string;
  startOffset: number;
  /** Pass as `sinceOffset` to read on without gaps or repeats. */
  nextOffset: number;
  /** True when `maxBytes` cut the window short. */
  truncated: boolean;
  /** The log's size in bytes when it was read. */
  size: number;
}

export interface WaitOptions {
  /** Give up after this many seconds and return the job as it is; default: never. */
  timeout?: number;
}

export interface ListOptions {
  /** Only jobs in one of these states; default: all. */
  states?: JobState[];
  /** Only jobs that carry every one of these labels. */
  labels?: Record<string, string>;
  /** Jobs fetched per call (1-1000); default 20. */
  pageSize?: number;
  /** Only the attempts of this group (`Job.group`). */
  group?: string;
}

/** One page of `listPage`. */
export interface Page {
  jobs: Job[];
  /** Pass as `pageToken` for the next page; empty on the last page. */
  nextPageToken: string;
}

export interface FollowOptions {
  /** Start at this byte offset; default: the beginning. */
  fromOffset?: number;
  /** Default: the transcript. */
  stream?: OutputStream;
  /** Ends the follow (with an error) when it aborts, even while no output comes. */
  signal?: AbortSignal;
}

export interface WatchOptions {
  /** Start with the jobs in one of these states; default: all. Changes come whatever the state. */
  states?: JobState[];
  /** Only jobs that carry every one of these labels. */
  labels?: Record<string, string>;
  /** Only these jobs (at most 1000); default: any. */
  jobIds?: string[];
  /**
   * The `position` of the last event of an earlier watch with the same filter:
   * start with the jobs that changed after it instead of the jobs as they are.
   */
  sincePosition?: number;
  /** Ends the watch (with an error) when it aborts, even while nothing changes. */
  signal?: AbortSignal;
}

export interface WaitAnyOptions {
  /** Give up after this many seconds and return null; default: never. */
  timeout?: number;
}

/**
 * One event of `watch`: a job (as it is, or when its state changed), or the marker
 * that the jobs the watch started with have all come. Pass `position` as
 * `sincePosition` to a later watch to resume after this event.
 */
export type WatchEvent =
  | { type: "job"; job: Job; position: number }
  | { type: "caught_up"; position: number };

/**
 * One event of `follow`: a piece of the log (bytes `[offset, offset + data.length)`),
 * or the job when its state changed.
 */
export type FollowEvent =
  | { type: "output"; offset: number; data: Uint8Array; text: string }
  | { type: "job"; job: Job };

/** The server holds one long-poll for five minutes at most. */
const MAX_WAIT_MS = 300_000;
/** How much longer than its long-poll a call may take before the client gives up. */
const WAIT_MARGIN_MS = 30_000;
/** How long `follow` and `watch` keep trying to reconnect without getting anywhere. */
const RECONNECT_FOR_MS = 30_000;
const RECONNECT_EVERY_MS = 500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A client of a codex-jobs server over any Connect transport: the Node
 * {@link Client} gives it a gRPC connection, a browser page a gRPC-Web one
 * (`createGrpcWebTransport` of `@connectrpc/connect-web`).
 *
 * Every method that calls the server throws {@link JobsError} when the call fails;
 * bad arguments throw a TypeError before anything is sent.
 */
export class JobsClient implements AsyncDisposable {
  readonly #rpc: RpcClient<typeof CodexJobs>;
  readonly #disconnect: () => void;
  #closed = false;

  /** `disconnect`, called by `close()`, drops the transport's connection. */
  constructor(transport: Transport, disconnect: () => void = () => {}) {
    this.#rpc = createClient(CodexJobs, transport);
    this.#disconnect = disconnect;
  }

  /** Starts a job and returns it at once, usually queued or running. */
  async start(prompt: string, options: StartOptions): Promise<Job> {
    const [job] = await this.#start(prompt, options, 1);
    return job;
  }

  /**
   * Best of N: starts `attempts` jobs (1-16) of one prompt, each in a git worktree
   * of its own from the same base commit, tied by their `group`. Returns them
   * oldest first; a retry with the same `requestId` returns the same jobs.
   */
  async startAttempts(
    prompt: string,
    attempts: number,
    options: Omit<StartOptions, "worktree" | "resumeThreadId">,
  ): Promise<Job[]> {
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > 16) {
      throw new TypeError(`attempts must be between 1 and 16, not ${attempts}`);
    }
    return this.#start(prompt, { ...options, worktree: true }, attempts);
  }

  async #start(prompt: string, options: StartOptions, attempts: number): Promise<Job[]> {
    const { timeout } = options;
    if (options.base !== undefined && !options.worktree) {
      throw new TypeError("base is the commit a worktree starts at: set worktree too");
    }
    if (timeout !== undefined && !(Number.isFinite(timeout) && timeout > 0)) {
      throw new TypeError(`timeout must be a positive number of seconds, not ${timeout}`);
    }
    const spec = {
      prompt,
      cwd: options.cwd,
      model: options.model ?? "",
      sandbox: options.sandbox === undefined ? undefined : sandboxToPb(options.sandbox),
      timeout: timeout === undefined ? undefined : durationFromMs(timeout * 1000),
      labels: options.labels ?? {},
      resumeThreadId: options.resumeThreadId ?? "",
      reasoningEffort:
        options.reasoningEffort === undefined
          ? undefined
          : reasoningEffortToPb(options.reasoningEffort),
      pool: options.pool ?? "",
      host: options.host ?? "",
      isolation: options.worktree ? Isolation.WORKTREE : Isolation.UNSPECIFIED,
      base: options.base ?? "",
    };
    const response = await this.#call(() =>
      this.#rpc.start({ spec, requestId: options.requestId ?? "", attempts }),
    );
    return response.attempts.length > 0 ? response.attempts.map(toJob) : [toJob(response.job)];
  }

  /**
   * The patch of what a job in a worktree changed (`git diff --binary` from its
   * base to its work), read a page at a time. Refused (FAILED_PRECONDITION) for a
   * job that ran in its cwd or has not ended.
   */
  async diff(jobId: string): Promise<Uint8Array> {
    const pages: Uint8Array[] = [];
    let offset = 0;
    for (;;) {
      const page = await this.#call(() => this.#rpc.diff({ jobId, offset: BigInt(offset) }));
      pages.push(page.patch);
      offset += page.patch.length;
      if (!page.truncated || page.patch.length === 0) {
        break;
      }
    }
    const patch = new Uint8Array(offset);
    let at = 0;
    for (const page of pages) {
      patch.set(page, at);
      at += page.length;
    }
    return patch;
  }

  /**
   * Applies what a job in a worktree changed to the checkout it was started in, by
   * a three-way merge with the checkout's own changes. On a conflict nothing
   * changes and the JobsError (FAILED_PRECONDITION) names the files.
   */
  async apply(jobId: string): Promise<Applied> {
    const response = await this.#call(() => this.#rpc.apply({ jobId }));
    return { job: toJob(response.job), checkout: response.checkout, files: response.files };
  }

  /** Returns a job and, if asked for, a window of its output. */
  async poll(jobId: string, options: PollOptions = {}): Promise<PollResult> {
    const { tailLines, sinceOffset } = options;
    if (tailLines !== undefined && sinceOffset !== undefined) {
      throw new TypeError("give tailLines or sinceOffset, not both");
    }
    const request = create(PollRequestSchema, {
      jobId,
      stream: streamToPb(options.stream),
      maxBytes: options.maxBytes ?? 0,
    });
    if (tailLines !== undefined) {
      request.window = { case: "tailLines", value: Number(toUint64("tailLines", tailLines)) };
    } else if (sinceOffset !== undefined) {
      request.window = { case: "sinceOffset", value: toUint64("sinceOffset", sinceOffset) };
    }
    const response = await this.#call(() => this.#rpc.poll(request));
    return {
      job: toJob(response.job),
      output: response.output,
      text: new TextDecoder().decode(response.output),
      startOffset: Number(response.startOffset),
      nextOffset: Number(response.nextOffset),
      truncated: response.truncated,
      size: Number(response.size),
    };
  }

  /**
   * Waits until a job ends, or `timeout` seconds pass, and returns it as it is
   * then: check `job.done`.
   */
  async wait(jobId: string, options: WaitOptions = {}): Promise<Job> {
    const { timeout } = options;
    if (timeout !== undefined && !(timeout >= 0)) {
      throw new TypeError(`timeout must be a number of seconds, not ${timeout}`);
    }
    const deadline = timeout === undefined ? Infinity : Date.now() + timeout * 1000;
    for (;;) {
      const left = Math.max(0, deadline - Date.now());
      const waitMs = Math.min(left, MAX_WAIT_MS);
      // Without an output window the call returns only when the job changes state
      // or the wait elapses; the deadline leaves the server time to answer.
      const response = await this.#call(() =>
        this.#rpc.poll(
          { jobId, wait: waitMs > 0 ? durationFromMs(waitMs) : undefined },
          { timeoutMs: waitMs + WAIT_MARGIN_MS },
        ),
      );
      const job = toJob(response.job);
      if (job.done || left === 0) {
        return job;
      }
    }
  }

  /**
   * Cancels a job and returns it once nothing of it runs any more, usually
   * cancelled (a job already ending keeps its outcome; a finished one is unchanged).
   */
  async cancel(jobId: string): Promise<Job> {
    const response = await this.#call(() => this.#rpc.cancel({ jobId }));
    return toJob(response.job);
  }

  /**
   * Deletes a job that has ended, with its logs, and returns it as it was. A job
   * that has not ended is refused (FAILED_PRECONDITION): cancel it first.
   */
  async delete(jobId: string): Promise<Job> {
    const response = await this.#call(() => this.#rpc.delete({ jobId }));
    return toJob(response.job);
  }

  /**
   * Deletes the jobs that ended more than `olderThanSeconds` ago (only those that
   * ended in one of `states`, if given), and says how many and how many bytes.
   */
  async prune(
    olderThanSeconds: number,
    options: { states?: JobState[] } = {},
  ): Promise<{ deleted: number; freedBytes: number }> {
    if (!(olderThanSeconds >= 0)) {
      throw new RangeError(`olderThanSeconds must not be negative, got ${olderThanSeconds}`);
    }
    const states = (options.states ?? []).map(stateToPb);
    const response = await this.#call(() =>
      this.#rpc.prune({ olderThan: durationFromMs(olderThanSeconds * 1000), states }),
    );
    return { deleted: Number(response.deleted), freedBytes: Number(response.freedBytes) };
  }

  /** Lists jobs, newest first, fetching page after page as the loop goes on. */
  async *list(options: ListOptions = {}): AsyncGenerator<Job, void, undefined> {
    let pageToken = "";
    do {
      const page = await this.listPage({ ...options, pageToken });
      yield* page.jobs;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /**
   * One page of jobs, newest first: pass its `nextPageToken` as `pageToken` for the
   * page after it; that token is empty on the last page.
   */
  async listPage(options: ListOptions & { pageToken?: string } = {}): Promise<Page> {
    const request = {
      states: (options.states ?? []).map(stateToPb),
      labels: options.labels ?? {},
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
      group: options.group ?? "",
    };
    const page = await this.#call(() => this.#rpc.list(request));
    return { jobs: page.jobs.map(toJob), nextPageToken: page.nextPageToken };
  }

  /**
   * Follows a job's log as it is written: output chunks in order, and the job each
   * time its state changes (first as it is), ending after the job in its final
   * state. If the connection drops, it reconnects (every 0.5 s, for up to 30 s
   * without progress) and resumes at the first byte not yet yielded, so the output
   * has no gap and no repeat.
   *
   * `text` is decoded across chunks, so a character split between two chunks is
   * whole in the second one.
   */
  async *follow(
    jobId: string,
    options: FollowOptions = {},
  ): AsyncGenerator<FollowEvent, void, undefined> {
    const stream = streamToPb(options.stream);
    let offset = options.fromOffset ?? 0;
    toUint64("fromOffset", offset);
    const decoder = new TextDecoder();
    // The server sends the job first on every (re)connection: yield changes only.
    let lastState: JobState | undefined;
    const { signal } = options;
    const rpc = this.#rpc;
    yield* this.#reconnecting(async function* (progress) {
      const responses = rpc.follow(
        { jobId, start: { case: "fromOffset", value: BigInt(offset) }, stream },
        { signal },
      );
      let finished = false;
      for await (const { event } of responses) {
        if (event.case === "output") {
          const start = Number(event.value.offset);
          // A chunk starts where we asked; should one overlap what was yielded
          // already, only its new bytes count.
          if (start > offset) {
            throw new JobsError("DATA_LOSS", `the server skipped bytes ${offset}-${start}`);
          }
          const data = event.value.data.subarray(offset - start);
          if (data.length === 0) {
            continue;
          }
          const text = decoder.decode(data, { stream: true });
          progress();
          yield { type: "output", offset, data, text };
          offset += data.length;
        } else if (event.case === "job") {
          const job = toJob(event.value);
          finished = job.done;
          if (job.state !== lastState) {
            lastState = job.state;
            yield { type: "job", job };
          }
        }
      }
      if (!finished) {
        throw new JobsError("UNAVAILABLE", "the stream ended before the job did");
      }
    }, signal);
  }

  /**
   * Watches jobs: first those that match as they are (in one of `states`, with
   * every one of `labels`, among `jobIds`), then one `caught_up` marker, then the
   * job each time the state of one that matches `labels` and `jobIds` changes. It
   * never ends on its own: break out of the loop to stop. If the connection drops,
   * it reconnects (every 0.5 s, for up to 30 s without progress) and resumes after
   * the last event it yielded, so no change is lost, though a job may come again in
   * a state already seen; the `caught_up` marker comes only once.
   */
  watch(options: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
    return this.#watch(options, options.signal);
  }

  /**
   * Waits until the first of `jobIds` ends (one that has ended already counts at
   * once) and returns it, or null if `timeout` seconds pass first. It holds one
   * `watch` open, not a call per job.
   */
  async waitAny(jobIds: string[], options: WaitAnyOptions = {}): Promise<Job | null> {
    if (!Array.isArray(jobIds) || jobIds.length === 0) {
      throw new TypeError("waitAny needs at least one job id");
    }
    const { timeout } = options;
    if (timeout !== undefined && !(timeout >= 0)) {
      throw new TypeError(`timeout must be a number of seconds, not ${timeout}`);
    }
    const expired = new AbortController();
    const timer =
      timeout === undefined ? undefined : setTimeout(() => expired.abort(), timeout * 1000);
    try {
      for await (const event of this.#watch({ jobIds }, expired.signal)) {
        if (event.type === "job" && event.job.done) {
          return event.job;
        }
      }
    } catch (err) {
      if (expired.signal.aborted) {
        return null;
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
    // The watch only ends by an error, or when `expired` cuts it.
    return null;
  }

  /** `watch`, ended (with an error) when `signal` aborts. */
  async *#watch(
    options: WatchOptions,
    signal?: AbortSignal,
  ): AsyncGenerator<WatchEvent, void, undefined> {
    const request = {
      states: (options.states ?? []).map(stateToPb),
      labels: options.labels ?? {},
      jobIds: options.jobIds ?? [],
      sincePosition: toUint64("sincePosition", options.sincePosition ?? 0),
    };
    let caughtUp = false;
    const rpc = this.#rpc;
    yield* this.#reconnecting(async function* (progress) {
      for await (const { event, position } of rpc.watch(request, { signal })) {
        progress();
        if (event.case === "job") {
          yield { type: "job", job: toJob(event.value), position: Number(position) };
        } else if (event.case === "caughtUp" && !caughtUp) {
          caughtUp = true;
          yield { type: "caught_up", position: Number(position) };
        }
        // A reconnection resumes after this message: it and all before it are out.
        request.sincePosition = position;
      }
      // The server is going away: reconnect as after a break.
      throw new ConnectError("the server ended the watch", Code.Unavailable);
    }, signal);
  }

  /**
   * Runs a stream, and runs it again when it breaks in a way a reconnect may cure:
   * every 0.5 s, until `attempt` calls `progress()` or 30 s have passed. `attempt`
   * opens the stream from where the last one stopped and yields its events; its
   * end is the end of the whole. An aborted `signal` ends the retries.
   */
  async *#reconnecting<T>(
    attempt: (progress: () => void) => AsyncGenerator<T, void, undefined>,
    signal?: AbortSignal,
  ): AsyncGenerator<T, void, undefined> {
    let brokenSince: number | undefined;
    let lastError: unknown;
    const progress = () => {
      brokenSince = undefined;
    };
    for (;;) {
      if (brokenSince !== undefined) {
        if (Date.now() - brokenSince > RECONNECT_FOR_MS) {
          throw new JobsError(
            "UNAVAILABLE",
            `lost the stream and could not resume it for ${RECONNECT_FOR_MS / 1000} s: ${
              (JobsError.from(lastError) as Error).message
            }`,
            { cause: lastError },
          );
        }
        await sleep(RECONNECT_EVERY_MS);
      }
      try {
        yield* attempt(progress);
        return;
      } catch (err) {
        if (signal?.aborted && !this.#closed) {
          throw new JobsError("CANCELLED", "the call was aborted", { cause: err });
        }
        if (this.#closed || !isRetryable(err)) {
          throw JobsError.from(err, this.#closed);
        }
        lastError = err;
        brokenSince ??= Date.now();
      }
    }
  }

  /** Runs one call, turning its errors into JobsError. */
  async #call<T>(rpc: () => Promise<T>): Promise<T> {
    try {
      return await rpc();
    } catch (err) {
      throw JobsError.from(err, this.#closed);
    }
  }

  /** Closes the connection, ending any call still open. */
  close(): void {
    this.#closed = true;
    this.#disconnect();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
