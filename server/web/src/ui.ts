// Small helpers to build the page's elements and to write numbers for people.
import type { Job, JobState } from "../../../client/typescript/src/web.js";

type Child = Node | string | null | undefined | false;

/**
 * An element with attributes (`on...` functions become event listeners) and
 * children; text is always set as text, never parsed as HTML.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | EventListener | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else if (typeof value === "string") {
      element.setAttribute(name, value);
    }
  }
  element.append(...children.filter((child): child is Node | string => !!child));
  return element;
}

/** A job's state as a badge; the text says it, the colour only repeats it. */
export function stateBadge(state: JobState): HTMLElement {
  return h("span", { class: `state state-${state}` }, state);
}

/** The first line of a prompt, shortened to `max` characters. */
export function firstLine(text: string, max = 100): string {
  const line = text.split("\n", 1)[0].trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `1h 02m`, `3m 07s`, `12.4s`. */
export function formatDuration(ms: number): string {
  const seconds = ms / 1000;
  if (seconds < 60) {
    return `${seconds.toFixed(1)}s`;
  }
  const whole = Math.floor(seconds);
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60];
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}h ${pad(m)}m` : `${m}m ${pad(s)}s`;
}

/**
 * How long a job ran, or has been running (then kept current by `keepTime`);
 * empty before it started.
 */
export function runTime(job: Job): HTMLElement {
  const span = h("span", {});
  if (job.startedAt) {
    const end = job.finishedAt ?? new Date();
    span.textContent = formatDuration(end.getTime() - job.startedAt.getTime());
    if (!job.finishedAt) {
      span.dataset.runningSince = String(job.startedAt.getTime());
    }
  }
  return span;
}

/** Brings every running time under `root` up to date each second, until `signal`. */
export function keepTime(root: HTMLElement, signal: AbortSignal): void {
  const timer = setInterval(() => {
    for (const span of root.querySelectorAll<HTMLElement>("[data-running-since]")) {
      span.textContent = formatDuration(Date.now() - Number(span.dataset.runningSince));
    }
  }, 1000);
  signal.addEventListener("abort", () => clearInterval(timer));
}

/** A time as a `<time>` element: local and readable, exact in its attribute. */
export function time(date: Date | null): HTMLElement | string {
  if (!date) {
    return "";
  }
  return h("time", { datetime: date.toISOString() }, date.toLocaleString());
}
