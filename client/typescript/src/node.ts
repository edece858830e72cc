import { JobsClient } from "./client.js";
import { connect, type ClientOptions } from "./transport.js";

/**
 * A client of a codex-jobs server, for Node. It connects on its first call and
 * keeps one HTTP/2 connection for all of them; `close()` drops it (an idle
 * connection does not keep Node running).
 *
 * Every method that calls the server throws {@link JobsError} when the call fails;
 * bad arguments throw a TypeError before anything is sent.
 */
export class Client extends JobsClient {
  constructor(options: ClientOptions = {}) {
    const { transport, session } = connect(options);
    super(transport, () => session.abort());
  }
}
