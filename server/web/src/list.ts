// The list of jobs, newest first, one page at a time, filtered by state and label;
// the rows change as the jobs do, and new jobs appear at the top of the first page.
import type { Job, JobState } from "../../../client/typescript/src/web.js";
import type { View } from "./app.js";
import { firstLine, formatBytes, h, keepTime, runTime, stateBadge, time } from "./ui.js";

const STATES: JobState[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE_SIZE = 25;

export async function showList(view: View, query: URLSearchParams): Promise<void> {
  const state = STATES.find((name) => name === query.get("state"));
  const label = query.get("label") ?? "";
  const page = query.get("page") ?? "";
  const labels = parseLabel(label);

  const heading = h("h1", { tabindex: "-1" }, "Jobs");
  const status = h("p", { class: "live", role: "status" }, "Loading…");
  const rows = h("tbody");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  view.main.append(
    heading,
    filterForm(state, label),
    status,
    h(
      "table",
      { class: "jobs" },
      h("caption", { class: "visually-hidden" }, "Jobs, newest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "State"),
          h("th", { scope: "col" }, "Job"),
          h("th", { scope: "col", class: "wide" }, "Labels"),
          h("th", { scope: "col", class: "wide" }, "Created"),
          h("th", { scope: "col" }, "Ran"),
          h("th", { scope: "col", class: "wide" }, "Size"),
        ),
      ),
      rows,
    ),
    pager,
  );
  heading.focus();
  keepTime(view.main, view.signal);

  if (labels === undefined) {
    status.textContent = `A label filter is key=value, not ${JSON.stringify(label)}.`;
    return;
  }
  const listed = await view.client.listPage({
    states: state ? [state] : [],
    labels,
    pageSize: PAGE_SIZE,
    pageToken: page,
  });
  const shown = new Map<string, HTMLTableRowElement>();
  for (const job of listed.jobs) {
    const row = jobRow(job);
    shown.set(job.id, row);
    rows.append(row);
  }
  if (listed.jobs.length === 0) {
    rows.append(h("tr", {}, h("td", { colspan: "6", class: "empty" }, "No jobs match.")));
  }
  pager.append(
    page ? h("a", { href: hrefFor(state, label, "") }, "← Newest") : "",
    listed.nextPageToken
      ? h("a", { href: hrefFor(state, label, listed.nextPageToken), rel: "next" }, "Older →")
      : "",
  );

  // Live: the unfinished jobs as they are, then every change of a job with these
  // labels. New jobs join the first page when they match its filter.
  status.textContent = "Live";
  try {
    for await (const event of view.client.watch({
      states: ["queued", "running"],
      labels,
      signal: view.signal,
    })) {
      if (event.type !== "job") {
        continue;
      }
      const { job } = event;
      const row = shown.get(job.id);
      if (row) {
        const updated = jobRow(job);
        row.replaceWith(updated);
        shown.set(job.id, updated);
      } else if (!page && (!state || job.state === state) && isNewest(job, shown)) {
        rows.querySelector("td.empty")?.parentElement?.remove();
        const added = jobRow(job);
        shown.set(job.id, added);
        rows.prepend(added);
      }
    }
  } catch (err) {
    if (!view.signal.aborted) {
      status.textContent = `Live updates stopped: ${err instanceof Error ? err.message : err}. Reload the page to try again.`;
      status.classList.add("stopped");
    }
  }
}

/** Ids are UUID v7: later jobs sort higher. */
function isNewest(job: Job, shown: Map<string, unknown>): boolean {
  for (const id of shown.keys()) {
    if (id > job.id) {
      return false;
    }
  }
  return true;
}

function jobRow(job: Job): HTMLTableRowElement {
  const labels = Object.entries(job.labels).map(([key, value]) =>
    h("span", { class: "label" }, `${key}=${value}`),
  );
  return h(
    "tr",
    { "data-job-id": job.id, "data-state": job.state },
    h("td", {}, stateBadge(job.state)),
    h(
      "td",
      { class: "prompt" },
      h("a", { href: `#/jobs/${job.id}` }, firstLine(job.prompt) || job.id),
    ),
    h("td", { class: "wide" }, ...labels),
    h("td", { class: "wide" }, time(job.createdAt)),
    h("td", {}, runTime(job)),
    h("td", { class: "wide number" }, formatBytes(job.diskBytes)),
  );
}

function filterForm(state: JobState | undefined, label: string): HTMLFormElement {
  const select = h(
    "select",
    { id: "filter-state", name: "state" },
    h("option", { value: "" }, "any"),
    ...STATES.map((name) => h("option", { value: name, selected: name === state }, name)),
  );
  const input = h("input", {
    id: "filter-label",
    name: "label",
    value: label,
    placeholder: "key=value",
    autocomplete: "off",
  });
  return h(
    "form",
    {
      class: "filters",
      role: "search",
      onsubmit: (event: Event) => {
        event.preventDefault();
        location.hash = hrefFor(
          STATES.find((name) => name === select.value),
          input.value.trim(),
          "",
        );
      },
    },
    h("label", { for: "filter-state" }, "State"),
    select,
    h("label", { for: "filter-label" }, "Label"),
    input,
    h("button", { type: "submit" }, "Filter"),
  );
}

/** `key=value` as a label filter; empty is none, anything else undefined. */
function parseLabel(text: string): Record<string, string> | undefined {
  if (!text) {
    return {};
  }
  const at = text.indexOf("=");
  if (at <= 0) {
    return undefined;
  }
  return { [text.slice(0, at)]: text.slice(at + 1) };
}

function hrefFor(state: JobState | undefined, label: string, page: string): string {
  const query = new URLSearchParams();
  if (state) query.set("state", state);
  if (label) query.set("label", label);
  if (page) query.set("page", page);
  const text = query.toString();
  return text ? `#/?${text}` : "#/";
}
