// A helper of the tests, not a test: a TCP proxy whose connections can be cut, to
// drop a stream between the client and the server.
import { once } from "node:events";
import net from "node:net";

/** A TCP proxy to `target` (http://HOST:PORT) whose live connections can be cut at once. */
export async function startProxy(target) {
  const url = new URL(target);
  const sockets = new Set();
  let connections = 0;
  const server = net.createServer((downstream) => {
    connections += 1;
    const upstream = net.connect(Number(url.port), url.hostname);
    for (const [from, to] of [[downstream, upstream], [upstream, downstream]]) {
      sockets.add(from);
      from.pipe(to);
      from.on("error", () => to.destroy());
      from.on("close", () => {
        sockets.delete(from);
        to.destroy();
      });
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    get connections() {
      return connections;
    },
    cut() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      this.cut();
      server.close();
    },
  };
}
