// The web view of codex-jobs-server: a live list of jobs (#/) and a job's page with
// its transcript (#/jobs/ID). It speaks to the server's job service over gRPC-Web
// through the TypeScript client, on the address that served the page.
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { JobsClient, JobsError } from "../../../client/typescript/src/web.js";
import { showJob } from "./job.js";
import { showList } from "./list.js";
import { h } from "./ui.js";

/** What a view draws into, and the signal that tells it it is gone. */
export interface View {
  client: JobsClient;
  main: HTMLElement;
  signal: AbortSignal;
}

/** Where the token is kept: for this tab only, never sent anywhere but here. */
const TOKEN_KEY = "codex-jobs-token";

const withToken: Interceptor = (next) => (request) => {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    request.header.set("authorization", `Bearer ${token}`);
  }
  return next(request);
};

const client = new JobsClient(
  createGrpcWebTransport({ baseUrl: location.origin, interceptors: [withToken] }),
);
const main = document.getElementById("main") as HTMLElement;
let current: AbortController | undefined;

/** Draws the view the address names, ending the one before. */
async function route(): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const view = { client, main, signal: controller.signal };
  main.replaceChildren();
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?", 2);
  const job = /^\/jobs\/([0-9a-f-]{36})$/.exec(path);
  try {
    if (job) {
      await showJob(view, job[1]);
    } else {
      await showList(view, new URLSearchParams(query));
    }
  } catch (err) {
    if (!controller.signal.aborted) {
      showError(err);
    }
  }
}

/** Shows what went wrong, or asks for a token if that is what is missing. */
export function showError(err: unknown): void {
  if (err instanceof JobsError && err.code === "UNAUTHENTICATED") {
    askForToken(err.message);
    return;
  }
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof JobsError ? `${err.code}: ` : "";
  main.replaceChildren(
    h(
      "div",
      { class: "error", role: "alert" },
      h("h1", {}, "Something went wrong"),
      h("p", {}, code + message),
      h(
        "p",
        {},
        h("a", { href: "#/" }, "All jobs"),
        " · ",
        h("button", { type: "button", onclick: () => void route() }, "Try again"),
      ),
    ),
  );
}

function askForToken(reason: string): void {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const form = h(
    "form",
    {
      class: "token-form",
      onsubmit: (event: Event) => {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        void route();
      },
    },
    h("h1", {}, "This server needs a token"),
    h("p", {}, reason),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Continue"),
    h(
      "p",
      { class: "hint" },
      "Kept in this tab only. Make one with `codex-jobs-server token new NAME`.",
    ),
  );
  main.replaceChildren(form);
  input.focus();
}

window.addEventListener("hashchange", () => void route());
void route();
