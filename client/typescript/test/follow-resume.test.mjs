// follow() across a dropped connection: a TCP proxy between the client and the
// server is cut mid-stream, and the iterator must carry on where it stopped.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client } from "codex-jobs";
import { startProxy } from "./proxy.mjs";

const endpoint = process.env.CODEX_JOBS_TEST_ENDPOINT;
const token = process.env.CODEX_JOBS_TEST_TOKEN;
const cwd = process.env.CODEX_JOBS_TEST_CWD;

let proxy;
before(async () => {
  proxy = await startProxy(endpoint);
});
after(() => proxy.close());

test("follow resumes after the connection is cut, without gap or repeat", async () => {
  const client = new Client({ endpoint: proxy.endpoint, token });
  const job = await client.start("say one\nsleep 1\nsay two\nsleep 1\nsay three", { cwd });
  const chunks = [];
  const states = [];
  let text = "";
  let cut = false;
  for await (const event of client.follow(job.id)) {
    if (event.type === "output") {
      assert.equal(event.offset, chunks.reduce((size, chunk) => size + chunk.length, 0));
      chunks.push(event.data);
      text += event.text;
      if (!cut) {
        cut = true;
        proxy.cut();
      }
    } else {
      states.push(event.job.state);
    }
  }
  client.close();

  assert.ok(proxy.connections >= 2, `the proxy saw ${proxy.connections} connection(s)`);
  const checker = new Client({ endpoint, token });
  const full = await checker.poll(job.id, { sinceOffset: 0 });
  assert.deepEqual(Buffer.concat(chunks), Buffer.from(full.output));
  assert.equal(text, full.text);
  assert.match(text, /one\ntwo\nthree\n/);
  // Each state once, though the server sends the job again on the reconnection.
  assert.equal(states.filter((state) => state === "running").length, 1, states.join(","));
  assert.equal(new Set(states).size, states.length, states.join(","));
  assert.equal(states.at(-1), "succeeded");
});
