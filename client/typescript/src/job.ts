import { durationMs, timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  FailureReason as PbFailureReason,
  Isolation as PbIsolation,
  JobState as PbJobState,
  OutputStream as PbOutputStream,
  ReasoningEffort as PbReasoningEffort,
  Sandbox as PbSandbox,
  type Job as PbJob,
} from "./gen/codex/jobs/v1/jobs_pb.js";

/** Where a job is in its life; `succeeded`, `failed` and `cancelled` are final. */
export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** Why a failed job failed. */
export type FailureReason =
  | "non_zero_exit"
  | "signaled"
  | "timed_out"
  | "start_failed"
  | "lost"
  | "disk_full";

/** The Codex sandbox a job runs in, from most to least restricted. */
export type Sandbox = "read-only" | "workspace-write" | "danger-full-access" | "bypass";

/**
 * How hard the model reasons (Codex's `model_reasoning_effort`); unset means
 * Codex's own default.
 */
export type ReasoningEffort = "low" | "medium" | "high";

/**
 * Which of a job's logs to read: the readable `transcript` (the default), the raw
 * `codex exec --json` `events` (JSON Lines), or Codex's `stderr`.
 */
export type OutputStream = "transcript" | "events" | "stderr";

/** Tokens Codex reported for its turn. */
export interface TokenUsage {
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
}

/** One file a job in a worktree changed; lines are zero for a binary file. */
export interface FileChange {
  path: string;
  added: number;
  removed: number;
  binary: boolean;
}

/** What a job in a worktree changed: its work, committed on `branch`. */
export interface Change {
  baseCommit: string;
  headCommit: string;
  /** `codex-jobs/JOB_ID`, until the job is deleted. */
  branch: string;
  files: FileChange[];
  /** Size in bytes of the patch `diff` returns. */
  patchSize: number;
}

/** A job and what its run produced so far, as plain data. */
export interface Job {
  /** UUID v7, so ids sort by creation time. */
  id: string;
  state: JobState;
  /** True once `state` is final: `succeeded`, `failed` or `cancelled`. */
  done: boolean;
  prompt: string;
  cwd: string;
  /** The model passed to Codex; empty for Codex's own default. */
  model: string;
  sandbox: Sandbox;
  /** How hard the model reasons; null for Codex's own default. */
  reasoningEffort: ReasoningEffort | null;
  labels: Record<string, string>;
  /** The wall-clock limit in seconds; null when the job has none recorded. */
  timeoutSeconds: number | null;
  /** The Codex thread this job continues; empty for a new thread. */
  resumeThreadId: string;
  /** Set when `state` is `failed`. */
  failureReason: FailureReason | null;
  /** A sentence a person can act on when the job failed or was cancelled. */
  error: string | null;
  /** Codex's exit status, once it exited normally. */
  exitCode: number | null;
  /** The signal that ended Codex, when a signal did. */
  signal: number | null;
  createdAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** The Codex thread id, once Codex reported it; pass it as `resumeThreadId`. */
  threadId: string | null;
  /** Codex's final agent message; empty until the job ends. */
  finalMessage: string;
  usage: TokenUsage | null;
  /** Size in bytes of the transcript so far. */
  outputSize: number;
  /** Bytes the job takes on the server's disk (its directory with every log). */
  diskBytes: number;
  /** The request id the job was started with. */
  requestId: string | null;
  /** Who started the job: `token NAME`, `certificate CN`, `uid N` or `anonymous`. */
  createdBy: string;
  /** Why the output logs stop short, when they do. */
  outputNote: string | null;
  /** The pool of job hosts it runs in. */
  pool: string;
  /** The one host it asked to run on, or null for any host of its pool. */
  targetHost: string | null;
  /** The job host that runs (or ran) it; null while it is queued. */
  host: string | null;
  /** True while that host has stopped heartbeating: the state is as it last told. */
  hostUnreachable: boolean;
  /**
   * For a job in a git worktree of its own: the commit (or, until a host has
   * checked the job, the ref) it starts at; null for a job run in its cwd.
   */
  worktreeBase: string | null;
  /** The id shared by the attempts started together with it; null for one alone. */
  group: string | null;
  /** What a job in a worktree changed, once it has ended. */
  change: Change | null;
}

const STATES: Record<PbJobState, JobState | undefined> = {
  [PbJobState.UNSPECIFIED]: undefined,
  [PbJobState.QUEUED]: "queued",
  [PbJobState.RUNNING]: "running",
  [PbJobState.SUCCEEDED]: "succeeded",
  [PbJobState.FAILED]: "failed",
  [PbJobState.CANCELLED]: "cancelled",
};

const FAILURE_REASONS: Record<PbFailureReason, FailureReason | null> = {
  [PbFailureReason.UNSPECIFIED]: null,
  [PbFailureReason.NON_ZERO_EXIT]: "non_zero_exit",
  [PbFailureReason.SIGNALED]: "signaled",
  [PbFailureReason.TIMED_OUT]: "timed_out",
  [PbFailureReason.START_FAILED]: "start_failed",
  [PbFailureReason.LOST]: "lost",
  [PbFailureReason.DISK_FULL]: "disk_full",
};

const SANDBOXES: Record<Sandbox, PbSandbox> = {
  "read-only": PbSandbox.READ_ONLY,
  "workspace-write": PbSandbox.WORKSPACE_WRITE,
  "danger-full-access": PbSandbox.DANGER_FULL_ACCESS,
  bypass: PbSandbox.BYPASS,
};

const REASONING_EFFORTS: Record<ReasoningEffort, PbReasoningEffort> = {
  low: PbReasoningEffort.LOW,
  medium: PbReasoningEffort.MEDIUM,
  high: PbReasoningEffort.HIGH,
};

const STREAMS: Record<OutputStream, PbOutputStream> = {
  transcript: PbOutputStream.TRANSCRIPT,
  events: PbOutputStream.EVENTS,
  stderr: PbOutputStream.STDERR,
};

/** Looks `name` up in `table`, or throws a TypeError that lists the allowed names. */
function lookup<K extends string, V>(table: Record<K, V>, what: string, name: unknown): V {
  if (typeof name === "string" && Object.hasOwn(table, name)) {
    return table[name as K];
  }
  const allowed = Object.keys(table).map((key) => JSON.stringify(key));
  throw new TypeError(`unknown ${what} ${JSON.stringify(name)}: use one of ${allowed.join(", ")}`);
}

export const sandboxToPb = (name: Sandbox): PbSandbox => lookup(SANDBOXES, "sandbox", name);

export const reasoningEffortToPb = (name: ReasoningEffort): PbReasoningEffort =>
  lookup(REASONING_EFFORTS, "reasoning effort", name);

/** The log to read; undefined means the transcript. */
export const streamToPb = (name: OutputStream | undefined): PbOutputStream =>
  name === undefined ? PbOutputStream.UNSPECIFIED : lookup(STREAMS, "stream", name);

const STATE_NUMBERS = Object.fromEntries(
  Object.entries(STATES).flatMap(([number, name]) => (name ? [[name, Number(number)]] : [])),
) as Record<JobState, PbJobState>;

export const stateToPb = (name: JobState): PbJobState => lookup(STATE_NUMBERS, "job state", name);

/** A non-negative integer below 2^53 as a uint64, or a TypeError naming the option. */
export function toUint64(what: string, value: number): bigint {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`${what} must be a non-negative integer, not ${value}`);
  }
  return BigInt(value);
}

const date = (timestamp: Timestamp | undefined): Date | null =>
  timestamp ? timestampDate(timestamp) : null;

const orNull = (text: string): string | null => (text === "" ? null : text);

/** Converts the wire form of a job. */
export function toJob(job: PbJob | undefined): Job {
  if (!job) {
    throw new TypeError("the server sent a response without its job");
  }
  const state = STATES[job.state];
  if (!state) {
    throw new TypeError(`the server sent job ${job.id} in an unknown state (${job.state})`);
  }
  const spec = job.spec;
  const sandbox = spec?.sandbox ?? PbSandbox.UNSPECIFIED;
  const effort = spec?.reasoningEffort ?? PbReasoningEffort.UNSPECIFIED;
  return {
    id: job.id,
    state,
    done: state === "succeeded" || state === "failed" || state === "cancelled",
    prompt: spec?.prompt ?? "",
    cwd: spec?.cwd ?? "",
    model: spec?.model ?? "",
    // Unset means read-only, the default.
    sandbox:
      (Object.keys(SANDBOXES) as Sandbox[]).find((name) => SANDBOXES[name] === sandbox) ??
      "read-only",
    // Unset (or a level this client does not know) means Codex's default.
    reasoningEffort:
      (Object.keys(REASONING_EFFORTS) as ReasoningEffort[]).find(
        (name) => REASONING_EFFORTS[name] === effort,
      ) ?? null,
    labels: { ...spec?.labels },
    timeoutSeconds: spec?.timeout ? durationMs(spec.timeout) / 1000 : null,
    resumeThreadId: spec?.resumeThreadId ?? "",
    failureReason: FAILURE_REASONS[job.failureReason] ?? null,
    error: orNull(job.error),
    exitCode: job.exitCode ?? null,
    signal: job.signal ?? null,
    createdAt: date(job.createdAt),
    startedAt: date(job.startedAt),
    finishedAt: date(job.finishedAt),
    threadId: orNull(job.threadId),
    finalMessage: job.finalMessage,
    usage: job.usage
      ? {
          inputTokens: Number(job.usage.inputTokens),
          cachedInputTokens: Number(job.usage.cachedInputTokens),
          outputTokens: Number(job.usage.outputTokens),
        }
      : null,
    outputSize: Number(job.outputSize),
    diskBytes: Number(job.diskBytes),
    requestId: orNull(job.requestId),
    createdBy: job.createdBy,
    outputNote: orNull(job.outputNote),
    pool: spec?.pool || "default",
    targetHost: orNull(spec?.host ?? ""),
    host: orNull(job.host),
    hostUnreachable: job.hostUnreachable,
    worktreeBase: spec?.isolation === PbIsolation.WORKTREE ? spec.base : null,
    group: orNull(job.group),
    change: job.change
      ? {
          baseCommit: job.change.baseCommit,
          headCommit: job.change.headCommit,
          branch: job.change.branch,
          files: job.change.files.map((file) => ({
            path: file.path,
            added: Number(file.linesAdded),
            removed: Number(file.linesRemoved),
            binary: file.binary,
          })),
          patchSize: Number(job.change.patchSize),
        }
      : null,
  };
}
