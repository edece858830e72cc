// A job's page: its details, which change as the job does, and its transcript as
// it is written. The client's follow resumes at the first byte it has not shown
// after a dropped connection, so the transcript has no gap and no repeat.
import type { Job } from "../../../client/typescript/src/web.js";
import { showError, type View } from "./app.js";
import { firstLine, formatBytes, h, keepTime, runTime, stateBadge, time } from "./ui.js";

export async function showJob(view: View, id: string): Promise<void> {
  const heading = h("h1", { tabindex: "-1" }, id);
  const actions = h("div", { class: "actions" });
  const details = h("dl", { class: "details" });
  const transcript = h("pre", { class: "transcript", id: "transcript", tabindex: "0" });
  const reply = h("section", { class: "reply", "aria-labelledby": "reply-heading" });
  view.main.append(
    h("p", { class: "back" }, h("a", { href: "#/" }, "← All jobs")),
    heading,
    actions,
    h(
      "div",
      { class: "job" },
      h(
        "section",
        { "aria-labelledby": "transcript-heading" },
        h("h2", { id: "transcript-heading" }, "Transcript"),
        transcript,
        reply,
      ),
      h(
        "aside",
        { "aria-labelledby": "details-heading" },
        h("h2", { id: "details-heading" }, "Details"),
        details,
      ),
    ),
  );
  heading.focus();
  keepTime(view.main, view.signal);

  let shown: Job | undefined;
  const show = (job: Job) => {
    const first = !shown;
    const changed = first || shown!.state !== job.state;
    shown = job;
    heading.replaceChildren(stateBadge(job.state), " ", firstLine(job.prompt) || job.id);
    details.replaceChildren(...jobDetails(job));
    if (changed) {
      actions.replaceChildren(...jobActions(view, job));
      reply.replaceChildren(...replyForm(view, job));
    }
  };

  for await (const event of view.client.follow(id, { signal: view.signal })) {
    if (event.type === "job") {
      show(event.job);
    } else {
      // Keep the view at the end while the reader is there.
      const atEnd = transcript.scrollTop + transcript.clientHeight >= transcript.scrollHeight - 4;
      transcript.append(event.text);
      transcript.dataset.bytes = String(event.offset + event.data.length);
      if (atEnd) {
        transcript.scrollTop = transcript.scrollHeight;
      }
    }
  }
  transcript.dataset.complete = "true";
}

function jobDetails(job: Job): Node[] {
  const rows: [string, Node | string][] = [
    ["Id", h("code", {}, job.id)],
    [
      "State",
      job.failureReason ? `${job.state} (${job.failureReason.replaceAll("_", " ")})` : job.state,
    ],
  ];
  if (job.error) rows.push(["Error", job.error]);
  rows.push(
    ["Prompt", h("pre", { class: "prompt-text" }, job.prompt)],
    ["Directory", h("code", {}, job.cwd)],
    ["Model", job.model || "Codex's default"],
    ["Sandbox", job.sandbox],
    ["Reasoning", job.reasoningEffort ?? "Codex's default"],
  );
  const labels = Object.entries(job.labels);
  if (labels.length) {
    rows.push([
      "Labels",
      h(
        "span",
        {},
        ...labels.map(([key, value]) => h("span", { class: "label" }, `${key}=${value}`)),
      ),
    ]);
  }
  if (job.worktreeBase !== null) {
    rows.push(["Worktree", h("span", {}, "from ", h("code", {}, job.worktreeBase || "HEAD"))]);
  }
  if (job.group) rows.push(["Attempt of", h("code", {}, job.group)]);
  if (job.change) {
    const { change } = job;
    const added = change.files.reduce((sum, file) => sum + file.added, 0);
    const removed = change.files.reduce((sum, file) => sum + file.removed, 0);
    rows.push([
      "Change",
      h(
        "span",
        {},
        `${change.files.length} file${change.files.length === 1 ? "" : "s"}, +${added} -${removed} on `,
        h("code", {}, change.branch),
        h(
          "ul",
          { class: "changed-files" },
          ...change.files.map((file) =>
            h(
              "li",
              {},
              h("code", {}, file.path),
              file.binary ? " (binary)" : ` +${file.added} -${file.removed}`,
            ),
          ),
        ),
      ),
    ]);
  }
  if (job.host) rows.push(["Host", job.hostUnreachable ? `${job.host} (cannot be reached)` : job.host]);
  if (job.pool !== "default" || job.targetHost) {
    rows.push(["Pool", job.targetHost ? `${job.pool}, host ${job.targetHost}` : job.pool]);
  }
  rows.push(["Started by", job.createdBy], ["Created", time(job.createdAt)]);
  if (job.startedAt) rows.push(["Started", time(job.startedAt)]);
  if (job.finishedAt) rows.push(["Finished", time(job.finishedAt)]);
  if (job.startedAt) rows.push([job.finishedAt ? "Ran for" : "Running for", runTime(job)]);
  if (job.exitCode !== null) rows.push(["Exit status", String(job.exitCode)]);
  if (job.signal !== null) rows.push(["Signal", String(job.signal)]);
  if (job.usage) {
    const { inputTokens, cachedInputTokens, outputTokens } = job.usage;
    rows.push(["Tokens", `${inputTokens} in (${cachedInputTokens} cached), ${outputTokens} out`]);
  }
  if (job.threadId) rows.push(["Thread", h("code", {}, job.threadId)]);
  if (job.resumeThreadId) rows.push(["Continues", h("code", {}, job.resumeThreadId)]);
  rows.push(["On disk", formatBytes(job.diskBytes)]);
  if (job.outputNote) rows.push(["Output", job.outputNote]);
  if (job.finalMessage)
    rows.push(["Final message", h("pre", { class: "final-message" }, job.finalMessage)]);
  return rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]);
}

function jobActions(view: View, job: Job): Node[] {
  if (job.done) {
    return [];
  }
  const cancel = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        cancel.disabled = true;
        cancel.textContent = "Cancelling…";
        try {
          // The job's page updates from the follow when the job ends.
          await view.client.cancel(job.id);
        } catch (err) {
          showError(err);
        }
      },
    },
    "Cancel job",
  );
  return [cancel];
}

/** A follow-up in the job's Codex thread, once the job has ended with one. */
function replyForm(view: View, job: Job): Node[] {
  if (!job.done || !job.threadId) {
    return [];
  }
  const prompt = h("textarea", { id: "reply-prompt", name: "prompt", rows: "4", required: true });
  const submit = h("button", { type: "submit" }, "Start follow-up");
  const form = h(
    "form",
    {
      onsubmit: async (event: Event) => {
        event.preventDefault();
        submit.disabled = true;
        try {
          const next = await view.client.start(prompt.value, {
            cwd: job.cwd,
            model: job.model || undefined,
            sandbox: job.sandbox,
            reasoningEffort: job.reasoningEffort ?? undefined,
            labels: job.labels,
            timeout: job.timeoutSeconds ?? undefined,
            resumeThreadId: job.threadId!,
            // A job in a worktree goes on in a new one, from the commit of its work.
            ...(job.worktreeBase !== null
              ? { worktree: true, base: job.change?.headCommit ?? job.worktreeBase }
              : {}),
          });
          location.hash = `#/jobs/${next.id}`;
        } catch (err) {
          showError(err);
        }
      },
    },
    h("label", { for: "reply-prompt" }, "Prompt"),
    prompt,
    submit,
  );
  return [
    h("h2", { id: "reply-heading" }, "Follow up"),
    h(
      "p",
      { class: "hint" },
      "Starts a new job in this job's Codex thread, with its directory, model, sandbox, timeout and labels.",
    ),
    form,
  ];
}
