// The client against a real codex-jobs-server that runs a fake Codex, whose prompt
// is a script: `say TEXT`, `sleep SECS`, `exit N`, `fail TEXT`.
//
// Environment: CODEX_JOBS_TEST_ENDPOINT (http://127.0.0.1:PORT), CODEX_JOBS_TEST_TOKEN,
// CODEX_JOBS_TEST_CWD (a directory for the jobs) and, optionally,
// CODEX_JOBS_TEST_SOCKET (unix:PATH of the same server).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Client, JobsError, defaultEndpoint } from "codex-jobs";

const endpoint = process.env.CODEX_JOBS_TEST_ENDPOINT;
const token = process.env.CODEX_JOBS_TEST_TOKEN;
const cwd = process.env.CODEX_JOBS_TEST_CWD;
const socket = process.env.CODEX_JOBS_TEST_SOCKET;
assert.ok(endpoint && token && cwd, "set CODEX_JOBS_TEST_ENDPOINT, _TOKEN and _CWD");

const client = new Client({ endpoint, token });

/** Polls until `check(job)` holds, failing after `seconds`. */
async function pollUntil(id, check, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const { job } = await client.poll(id);
    if (check(job)) return job;
    assert.ok(Date.now() < deadline, `job ${id} is still ${job.state}`);
    // Long-poll for the next change of state instead of sleeping.
    await client.wait(id, { timeout: 0.2 });
  }
}

test("start and follow to the end", async () => {
  const prompt = "say first ✓ line\nsay ünïcödé last";
  const job = await client.start(prompt, { cwd, labels: { test: "follow" } });
  assert.match(job.id, /^[0-9a-f-]{36}$/);
  assert.deepEqual(job.labels, { test: "follow" });
  assert.ok(job.createdAt instanceof Date);

  let text = "";
  let offset = 0;
  const jobs = [];
  for await (const event of client.follow(job.id)) {
    if (event.type === "output") {
      assert.equal(event.offset, offset, "chunks arrive in order, without gaps");
      offset += event.data.length;
      text += event.text;
    } else {
      jobs.push(event.job);
    }
  }
  const full = await client.poll(job.id, { sinceOffset: 0 });
  assert.equal(text, full.text);
  assert.equal(offset, full.nextOffset);
  assert.match(text, /first ✓ line\nünïcödé last\n/);

  const last = jobs.at(-1);
  assert.equal(last.state, "succeeded");
  assert.equal(last.done, true);
  assert.equal(last.finalMessage, "ünïcödé last");
  assert.equal(last.exitCode, 0);
  assert.equal(last.failureReason, null);
  assert.ok(last.finishedAt instanceof Date);
  assert.equal(jobs.filter((job) => job.done).length, 1, "the final job comes once");
});

test("poll windows: tail lines and offsets", async () => {
  const job = await client.start("say alpha\nsay beta\nsay gamma", { cwd });
  await client.wait(job.id);
  const all = await client.poll(job.id, { sinceOffset: 0 });
  assert.equal(all.startOffset, 0);
  assert.equal(all.size, all.output.length);
  const rest = await client.poll(job.id, { sinceOffset: 6 });
  assert.equal(rest.startOffset, 6);
  assert.equal(rest.text, all.text.slice(6));
  const tail = await client.poll(job.id, { tailLines: 1 });
  assert.equal(tail.nextOffset, all.size);
  assert.ok(all.text.endsWith(tail.text));
  const cut = await client.poll(job.id, { sinceOffset: 0, maxBytes: 3 });
  assert.equal(cut.text, "alp");
  assert.equal(cut.truncated, true);
  const none = await client.poll(job.id);
  assert.equal(none.output.length, 0);
  assert.equal(none.job.state, "succeeded");
});

test("a failing job", async () => {
  const job = await client.start("say trying\nexit 3", { cwd });
  const done = await client.wait(job.id);
  assert.equal(done.state, "failed");
  assert.equal(done.failureReason, "non_zero_exit");
  assert.equal(done.exitCode, 3);
});

test("reasoning effort", async () => {
  const job = await client.start("say thinking hard", { cwd, reasoningEffort: "high" });
  assert.equal(job.reasoningEffort, "high");
  const done = await client.wait(job.id);
  assert.equal(done.state, "succeeded");
  assert.equal(done.reasoningEffort, "high");
  assert.equal((await client.start("say default", { cwd })).reasoningEffort, null);
  await assert.rejects(client.start("say hi", { cwd, reasoningEffort: "max" }), {
    name: "TypeError",
    message: /unknown reasoning effort "max": use one of "low", "medium", "high"/,
  });
});

test("wait returns at its timeout, then when the job ends", async () => {
  const job = await client.start("sleep 3\nsay awake", { cwd });
  const started = Date.now();
  const early = await client.wait(job.id, { timeout: 0.5 });
  assert.equal(early.done, false, `state ${early.state}`);
  assert.ok(Date.now() - started < 2500, "wait gave up at its timeout");
  const late = await client.wait(job.id);
  assert.equal(late.state, "succeeded");
  assert.equal(late.finalMessage, "awake");
});

test("cancel a sleeping job", async () => {
  const job = await client.start("say going to sleep\nsleep 60", { cwd });
  await pollUntil(job.id, (job) => job.state === "running");
  const cancelled = await client.cancel(job.id);
  assert.equal(cancelled.state, "cancelled");
  assert.equal(cancelled.done, true);
  assert.equal((await client.poll(job.id)).job.state, "cancelled");
});

test("list pages through every job, newest first", async () => {
  const labels = { run: randomUUID() };
  const ids = [];
  for (let i = 0; i < 5; i++) {
    ids.push((await client.start(`say quick ${i}`, { cwd, labels })).id);
  }
  const listed = [];
  for await (const job of client.list({ labels, pageSize: 2 })) {
    listed.push(job.id);
    assert.deepEqual(job.labels, labels);
  }
  assert.deepEqual(listed, ids.toReversed());

  for (const id of ids) await client.wait(id);
  const succeeded = [];
  for await (const job of client.list({ labels, states: ["succeeded"], pageSize: 3 })) {
    succeeded.push(job.id);
  }
  assert.deepEqual(succeeded, ids.toReversed());
  for await (const job of client.list({ labels, states: ["running", "queued"] })) {
    assert.fail(`job ${job.id} is listed as ${job.state}`);
  }

  // One page at a time, as a page with "Older" links reads them.
  const first = await client.listPage({ labels, pageSize: 3 });
  assert.deepEqual(first.jobs.map((job) => job.id), ids.toReversed().slice(0, 3));
  const second = await client.listPage({ labels, pageSize: 3, pageToken: first.nextPageToken });
  assert.deepEqual(second.jobs.map((job) => job.id), ids.toReversed().slice(3));
  assert.equal(second.nextPageToken, "");
});

test("an aborted follow or watch ends at once, as CANCELLED", async () => {
  const job = await client.start("say waiting\nsleep 60", { cwd });
  const follow = new AbortController();
  const watch = new AbortController();
  const followed = (async () => {
    for await (const event of client.follow(job.id, { signal: follow.signal })) {
      // Output stops after the first line: only the abort ends this loop.
      if (event.type === "output") follow.abort();
    }
  })();
  const watched = (async () => {
    for await (const event of client.watch({ jobIds: [job.id], signal: watch.signal })) {
      if (event.type === "caught_up") watch.abort();
    }
  })();
  const cancelled = (err) => {
    assert.ok(err instanceof JobsError);
    assert.equal(err.code, "CANCELLED");
    return true;
  };
  await Promise.all([assert.rejects(followed, cancelled), assert.rejects(watched, cancelled)]);
  await client.cancel(job.id);
});

test("a call without the token is UNAUTHENTICATED", async () => {
  const anonymous = new Client({ endpoint, token: "" });
  await assert.rejects(anonymous.poll(randomUUID()), (err) => {
    assert.ok(err instanceof JobsError);
    assert.equal(err.code, "UNAUTHENTICATED");
    return true;
  });
  const wrong = new Client({ endpoint, token: "not-the-token" });
  await assert.rejects(wrong.list().next(), { name: "JobsError", code: "UNAUTHENTICATED" });
});

test("server errors: NOT_FOUND and INVALID_ARGUMENT", async () => {
  const id = "0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47";
  await assert.rejects(client.poll(id), (err) => {
    assert.ok(err instanceof JobsError);
    assert.equal(err.code, "NOT_FOUND");
    assert.match(err.message, new RegExp(id));
    assert.doesNotMatch(err.message, /^\[/, "the server's message, without Connect's prefix");
    return true;
  });
  await assert.rejects(client.cancel(id), { code: "NOT_FOUND" });
  await assert.rejects(client.poll("not-a-job-id"), { name: "JobsError", code: "INVALID_ARGUMENT" });
  const events = client.follow("not-a-job-id");
  await assert.rejects(events.next(), { code: "INVALID_ARGUMENT" });
  await assert.rejects(client.start("", { cwd }), { code: "INVALID_ARGUMENT" });
});

test("client-side validation", async () => {
  for (const bad of ["ftp://host:1", "localhost:50051", "127.0.0.1:50051", "unix:", "http://"]) {
    assert.throws(() => new Client({ endpoint: bad }), {
      name: "TypeError",
      message: /^bad endpoint .*: use http:\/\/HOST:PORT, https:\/\/HOST:PORT or unix:PATH$/,
    });
  }
  assert.throws(() => new Client({ endpoint, caCert: "/ca.pem" }), {
    name: "TypeError",
    message: /https:\/\//,
  });
  assert.throws(() => new Client({ endpoint: "https://example.invalid:443", clientCert: "/c.pem" }), {
    message: /give both or neither/,
  });
  await assert.rejects(client.start("say hi", { cwd, sandbox: "full" }), {
    name: "TypeError",
    message: /"read-only", "workspace-write", "danger-full-access", "bypass"/,
  });
  await assert.rejects(client.poll(randomUUID(), { tailLines: 1, sinceOffset: 0 }), {
    name: "TypeError",
  });
  await assert.rejects(client.poll(randomUUID(), { stream: "stdout" }), { name: "TypeError" });
  await assert.rejects(client.list({ states: ["done"] }).next(), { name: "TypeError" });
});

test("a unix: endpoint", { skip: !socket && "CODEX_JOBS_TEST_SOCKET is not set" }, async () => {
  const local = new Client({ endpoint: socket, token });
  const job = await local.start("say over the socket", { cwd, sandbox: "read-only" });
  const done = await local.wait(job.id);
  assert.equal(done.state, "succeeded");
  assert.equal(done.finalMessage, "over the socket");
  local.close();
});

test("no endpoint: the socket under $XDG_DATA_HOME", { skip: !socket && "no socket" }, async () => {
  const names = ["XDG_DATA_HOME", "HOME", "CODEX_JOBS_ENDPOINT"];
  const saved = names.map((name) => process.env[name]);
  const dataHome = await mkdtemp(join(tmpdir(), "codex-jobs-test-"));
  try {
    await mkdir(join(dataHome, "codex-jobs"));
    await symlink(socket.slice("unix:".length), join(dataHome, "codex-jobs", "codex-jobs.sock"));
    process.env.XDG_DATA_HOME = dataHome;
    process.env.CODEX_JOBS_ENDPOINT = ""; // empty counts as unset
    assert.equal(defaultEndpoint(), `unix:${dataHome}/codex-jobs/codex-jobs.sock`);
    const local = new Client({ token });
    assert.equal((await local.poll((await local.start("say hi", { cwd })).id)).job.prompt, "say hi");
    local.close();

    process.env.XDG_DATA_HOME = "";
    process.env.HOME = "/nonexistent-home";
    assert.equal(defaultEndpoint(), "unix:/nonexistent-home/.local/share/codex-jobs/codex-jobs.sock");
    await assert.rejects(new Client({ token }).poll(randomUUID()), { code: "UNAVAILABLE" });
  } finally {
    names.forEach((name, i) => {
      if (saved[i] === undefined) delete process.env[name];
      else process.env[name] = saved[i];
    });
    await rm(dataHome, { recursive: true, force: true });
  }
});

test("the README's example runs as written", async () => {
  // The README ships in the package, beside dist/.
  const readme = join(dirname(fileURLToPath(import.meta.resolve("codex-jobs"))), "..", "README.md");
  const example = (await readFile(readme, "utf8")).match(/```js\n([\s\S]*?)```/)[1];
  // Written beside this file, so that it resolves "codex-jobs" as the tests do.
  const script = join(dirname(fileURLToPath(import.meta.url)), `readme-example-${process.pid}.mjs`);
  await writeFile(script, example);
  try {
    const env = { ...process.env, CODEX_JOBS_ENDPOINT: endpoint, CODEX_JOBS_TOKEN: token };
    const { stdout } = await promisify(execFile)(process.execPath, [script], { cwd, env });
    assert.match(stdout, /succeeded\n$/);
  } finally {
    await rm(script, { force: true });
  }
});

test("delete and prune the jobs that ended", async () => {
  const labels = { run: randomUUID() };
  const ended = await client.start("say delete me", { cwd, labels });
  const done = await client.wait(ended.id);
  assert.ok(done.diskBytes > 0);
  const running = await client.start("sleep 60", { cwd, labels });
  await pollUntil(running.id, (job) => job.state === "running");
  await assert.rejects(client.delete(running.id), (err) => {
    assert.equal(err.code, "FAILED_PRECONDITION");
    assert.match(err.message, /cancel it first/);
    return true;
  });
  assert.equal((await client.delete(ended.id)).id, ended.id);
  await assert.rejects(client.poll(ended.id), { code: "NOT_FOUND" });
  await client.cancel(running.id);
  const pruned = await client.prune(0, { states: ["cancelled"] });
  assert.ok(pruned.deleted >= 1 && pruned.freedBytes > 0);
  const left = [];
  for await (const job of client.list({ labels })) left.push(job);
  assert.deepEqual(left, []);
  await assert.rejects(client.prune(-1), RangeError);
});

test("attempts in worktrees: a group, a diff each, one applied, a conflict refused", async () => {
  const git = promisify(execFile);
  const repo = await mkdtemp(join(tmpdir(), "codex-jobs-ts-repo-"));
  try {
    await writeFile(join(repo, "notes.txt"), "base\n");
    const identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"];
    for (const args of [["init", "--quiet"], ["add", "notes.txt"], [...identity, "commit", "--quiet", "-m", "start"]]) {
      await git("git", args, { cwd: repo });
    }
    const attempts = await client.startAttempts("run echo $$ >> notes.txt\nsay noted", 2, { cwd: repo });
    assert.equal(attempts.length, 2);
    const group = attempts[0].group;
    assert.ok(group && attempts.every((job) => job.group === group));
    assert.equal(attempts[0].worktreeBase?.length, 40);
    for (const attempt of attempts) {
      const job = await client.wait(attempt.id, { timeout: 30 });
      assert.equal(job.state, "succeeded");
      assert.deepEqual(job.change?.files, [{ path: "notes.txt", added: 1, removed: 0, binary: false }]);
    }
    const listed = [];
    for await (const job of client.list({ group })) listed.push(job.id);
    assert.deepEqual(listed.sort(), attempts.map((job) => job.id).sort());

    const patch = new TextDecoder().decode(await client.diff(attempts[0].id));
    assert.match(patch, /\+\+\+ b\/notes\.txt/);
    const applied = await client.apply(attempts[0].id);
    assert.deepEqual(applied.files, ["notes.txt"]);
    const taken = await readFile(join(repo, "notes.txt"), "utf8");
    assert.equal(taken.split("\n").length, 3);
    await assert.rejects(client.apply(attempts[1].id), (err) => {
      assert.ok(err instanceof JobsError);
      assert.equal(err.code, "FAILED_PRECONDITION");
      assert.match(err.message, /notes\.txt/);
      return true;
    });
    assert.equal(await readFile(join(repo, "notes.txt"), "utf8"), taken);
    await assert.rejects(client.startAttempts("say hi", 17, { cwd: repo }), TypeError);
    await assert.rejects(client.start("say hi", { cwd, base: "main" }), TypeError);
  } finally {
    await rm(repo, { recursive: true, force: true });
  }
});
