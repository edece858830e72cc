// watch() and waitAny() against a real server: the jobs as they are, the
// caught_up marker, the changes that follow, and a watch resumed across a cut
// connection. Same environment as client.test.mjs.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { Client, JobsError } from "codex-jobs";
import { startProxy } from "./proxy.mjs";

const endpoint = process.env.CODEX_JOBS_TEST_ENDPOINT;
const token = process.env.CODEX_JOBS_TEST_TOKEN;
const cwd = process.env.CODEX_JOBS_TEST_CWD;
assert.ok(endpoint && token && cwd, "set CODEX_JOBS_TEST_ENDPOINT, _TOKEN and _CWD");

const client = new Client({ endpoint, token });

let proxy;
before(async () => {
  proxy = await startProxy(endpoint);
});
after(() => {
  proxy.close();
  client.close();
});

test("watch: the jobs as they are, caught_up, then the changes", { timeout: 60_000 }, async () => {
  const labels = { watch: randomUUID() };
  const finished = await client.wait((await client.start("say before", { cwd, labels })).id);
  assert.equal(finished.state, "succeeded");

  const events = [];
  let started;
  let other;
  for await (const event of client.watch({ labels })) {
    events.push(event);
    if (event.type === "caught_up") {
      // Unlabelled, and done before the labelled one: it would come first.
      other = await client.start("say not watched", { cwd });
      await client.wait(other.id);
      started = await client.start("sleep 0.3\nsay watched", { cwd, labels });
    } else if (event.job.id === started?.id && event.job.done) {
      break;
    }
  }

  const summary = events.map((e) => (e.type === "job" ? `${e.job.id}:${e.job.state}` : e.type));
  const [first, marker, ...changes] = events;
  assert.equal(first.type, "job", summary.join(" "));
  assert.equal(first.job.id, finished.id);
  assert.equal(first.job.state, "succeeded");
  assert.deepEqual(first.job.labels, labels);
  assert.equal(marker.type, "caught_up", summary.join(" "));
  assert.ok(changes.length > 0);
  for (const event of changes) {
    assert.equal(event.type, "job", summary.join(" "));
    assert.equal(event.job.id, started.id, "only the labelled job's changes");
  }
  assert.notEqual(other.id, started.id);
  const states = changes.map((event) => event.job.state);
  assert.ok(states.includes("running"), states.join(","));
  assert.equal(states.at(-1), "succeeded");
  assert.equal(changes.at(-1).job.finalMessage, "watched");
  // Positions never go back.
  const positions = events.map((event) => event.position);
  assert.ok(positions[0] > 0);
  assert.deepEqual(positions, positions.toSorted((a, b) => a - b), positions.join(","));
});

test("watch resumes after the connection is cut", { timeout: 60_000 }, async () => {
  const watcher = new Client({ endpoint: proxy.endpoint, token });
  const labels = { watch: randomUUID() };
  const events = [];
  let meanwhile;
  let next;
  // A fresh start would leave out the finished job: only a resumed stream has it.
  for await (const event of watcher.watch({ labels, states: ["queued", "running"] })) {
    events.push(event);
    if (event.type === "caught_up") {
      proxy.cut();
      // Started and finished while the watch is cut off.
      meanwhile = await client.wait((await client.start("say meanwhile", { cwd, labels })).id);
      assert.equal(meanwhile.state, "succeeded");
    } else if (event.job.id === meanwhile?.id && event.job.done && !next) {
      // One more change, after the one the resumed stream caught up with.
      next = await client.start("say next", { cwd, labels });
    } else if (event.job.id === next?.id) {
      break;
    }
  }
  watcher.close();

  assert.ok(proxy.connections >= 2, `the proxy saw ${proxy.connections} connection(s)`);
  const summary = events.map((e) => (e.type === "job" ? `${e.job.id}:${e.job.state}` : e.type));
  assert.equal(events[0].type, "caught_up", "no job carries the label yet");
  assert.equal(events.filter((event) => event.type === "caught_up").length, 1, summary.join(" "));
  const last = events.filter((event) => event.type === "job" && event.job.id === meanwhile.id).at(-1);
  assert.equal(last.job.state, "succeeded", summary.join(" "));
  assert.equal(last.job.finalMessage, "meanwhile");
  assert.ok(last.position > events[0].position);
});

test("waitAny: the first job to end, or null at the timeout", { timeout: 60_000 }, async () => {
  const sleeper = await client.start("sleep 30", { cwd });
  try {
    const quick = await client.start("sleep 0.3\nsay quick", { cwd });
    const started = Date.now();
    const first = await client.waitAny([sleeper.id, quick.id]);
    assert.equal(first.id, quick.id);
    assert.equal(first.state, "succeeded");
    assert.equal(first.finalMessage, "quick");
    assert.ok(Date.now() - started < 20_000);
    // A job that has ended already counts at once.
    assert.equal((await client.waitAny([sleeper.id, quick.id], { timeout: 10 })).id, quick.id);

    const waited = Date.now();
    assert.equal(await client.waitAny([sleeper.id], { timeout: 0.5 }), null);
    const took = Date.now() - waited;
    assert.ok(took >= 450 && took < 5000, `waitAny took ${took} ms`);
  } finally {
    await client.cancel(sleeper.id);
  }
});

test("waitAny and watch refuse what they cannot watch", async () => {
  await assert.rejects(client.waitAny([]), { name: "TypeError", message: /at least one job id/ });
  await assert.rejects(client.waitAny(["0192f0c4-6a35-7b21-9c1e-3f0a5d2e8b47"]), (err) => {
    assert.ok(err instanceof JobsError);
    assert.equal(err.code, "NOT_FOUND");
    return true;
  });
  await assert.rejects(client.watch({ jobIds: ["not-a-job-id"] }).next(), {
    code: "INVALID_ARGUMENT",
  });
  await assert.rejects(client.watch({ sincePosition: -1 }).next(), { name: "TypeError" });
  await assert.rejects(client.watch({ states: ["done"] }).next(), { name: "TypeError" });
});
