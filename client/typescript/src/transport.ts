import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import type { SecureClientSessionOptions } from "node:http2";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

/**
 * How to reach a server. Each option left undefined is read from the environment
 * (an empty variable counts as unset); an option given as `""` means none.
 */
export interface ClientOptions {
  /**
   * `http://HOST:PORT`, `https://HOST:PORT` or `unix:PATH`. Default:
   * `$CODEX_JOBS_ENDPOINT`, else the local server's socket,
   * `unix:$XDG_DATA_HOME/codex-jobs/codex-jobs.sock`.
   */
  endpoint?: string;
  /** Bearer token for servers that require one. Default: `$CODEX_JOBS_TOKEN`. */
  token?: string;
  /**
   * PEM file of the CA to trust for an `https://` endpoint, instead of the system's
   * roots. Default: `$CODEX_JOBS_CA_CERT`.
   */
  caCert?: string;
  /**
   * PEM file of a client certificate (mutual TLS); needs `clientKey`.
   * Default: `$CODEX_JOBS_CLIENT_CERT`.
   */
  clientCert?: string;
  /** PEM file of the client certificate's key. Default: `$CODEX_JOBS_CLIENT_KEY`. */
  clientKey?: string;
}

/** A transport and the connection under it. */
export interface Connection {
  transport: Transport;
  session: Http2SessionManager;
}

/** An environment variable, with empty counting as unset. */
function env(name: string): string | undefined {
  return process.env[name] || undefined;
}

/** The socket of the local server, as the server itself places it. */
export function defaultEndpoint(): string {
  const dataHome = env("XDG_DATA_HOME") ?? join(env("HOME") ?? homedir(), ".local", "share");
  return `unix:${join(dataHome, "codex-jobs", "codex-jobs.sock")}`;
}

/** Opens (lazily: nothing connects before the first call) a gRPC connection. */
export function connect(options: ClientOptions): Connection {
  // An option given as "" means none, without falling back to the environment.
  const pick = (given: string | undefined, name: string) =>
    given === undefined ? env(name) : given || undefined;
  const endpoint = pick(options.endpoint, "CODEX_JOBS_ENDPOINT") ?? defaultEndpoint();
  const token = pick(options.token, "CODEX_JOBS_TOKEN");
  const caCert = pick(options.caCert, "CODEX_JOBS_CA_CERT");
  const clientCert = pick(options.clientCert, "CODEX_JOBS_CLIENT_CERT");
  const clientKey = pick(options.clientKey, "CODEX_JOBS_CLIENT_KEY");

  const badEndpoint = () =>
    new TypeError(
      `bad endpoint ${JSON.stringify(endpoint)}: ` +
        "use http://HOST:PORT, https://HOST:PORT or unix:PATH",
    );
  let baseUrl: string;
  const nodeOptions: SecureClientSessionOptions = {};
  if (endpoint.startsWith("unix:")) {
    const path = endpoint.slice("unix:".length);
    if (!path) {
      throw badEndpoint();
    }
    // The URL only names the :authority; the connection goes to the socket.
    baseUrl = "http://localhost";
    nodeOptions.createConnection = () => netConnect(path);
  } else {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw badEndpoint();
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) {
      throw badEndpoint();
    }
    baseUrl = url.origin;
  }

  const tls = baseUrl.startsWith("https:");
  if (!tls && (caCert || clientCert || clientKey)) {
    throw new TypeError(
      `caCert, clientCert and clientKey need an https:// endpoint, not ${JSON.stringify(endpoint)}`,
    );
  }
  if (!clientCert !== !clientKey) {
    throw new TypeError("clientCert and clientKey go together: give both or neither");
  }
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  if (caCert) {
    nodeOptions.ca = read("caCert", caCert);
  }
  if (clientCert && clientKey) {
    nodeOptions.cert = read("clientCert", clientCert);
    nodeOptions.key = read("clientKey", clientKey);
  }

  // Like the Rust client: a follower behind a dead network path learns of it
  // within a minute, idle or not.
  const session = new Http2SessionManager(
    baseUrl,
    { pingIntervalMs: 30_000, pingTimeoutMs: 20_000, pingIdleConnection: true },
    nodeOptions,
  );
  const interceptors: Interceptor[] = [];
  if (token) {
    const authorization = `Bearer ${token}`;
    interceptors.push((next) => (req) => {
      req.header.set("authorization", authorization);
      return next(req);
    });
  }
  const transport = createGrpcTransport({ baseUrl, sessionManager: session, interceptors });
  return { transport, session };
}
