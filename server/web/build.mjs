// Builds the web view's script, dist/app.js, which the server binary embeds with
// index.html and style.css (server/src/web.rs). The page speaks to the server
// through the TypeScript client (../../client/typescript/src), whose protobuf code
// that package's own build generates.
//
//   node build.mjs           type-checks src/ and writes dist/app.js
//   node build.mjs --check   fails if dist/app.js is not what src/ builds to
//
// The bundle is committed, so that building the server needs nothing but Rust.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const clientPackage = join(here, "..", "..", "client", "typescript");
const output = join(here, "dist", "app.js");
const check = process.argv.includes("--check");

/** Runs a command, echoing it, and fails the build if it fails. */
function run(command, args, cwd) {
  console.error(`> ${[command, ...args].join(" ")}`);
  execFileSync(command, args, { cwd, stdio: "inherit" });
}

if (!existsSync(join(here, "node_modules", "esbuild"))) {
  run("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], here);
}
// The client's generated code (src/gen), and its dependencies for the type check.
run(process.execPath, [join(clientPackage, "build.mjs")], clientPackage);
run(
  process.execPath,
  [join(here, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"],
  here,
);

const esbuild = await import("esbuild");
const result = await esbuild.build({
  entryPoints: [join(here, "src", "app.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  write: false,
  absWorkingDir: here,
  plugins: [oneCopyOfEachPackage()],
});
const built = result.outputFiles[0].contents;

if (check) {
  const committed = existsSync(output) ? readFileSync(output) : Buffer.alloc(0);
  if (!committed.equals(Buffer.from(built))) {
    console.error(
      `${output} is not what src/ builds to: run \`node server/web/build.mjs\` and commit it`,
    );
    process.exit(1);
  }
  console.error(`${output} is up to date (${built.length} bytes)`);
} else {
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, built);
  console.error(`wrote ${output} (${built.length} bytes)`);
}

/**
 * Resolves the npm packages from this folder, also for the client's sources: one
 * copy of each, at the version this package's lockfile pins, whatever the client
 * package has installed.
 */
function oneCopyOfEachPackage() {
  return {
    name: "one-copy-of-each-package",
    setup(build) {
      build.onResolve({ filter: /^@(bufbuild|connectrpc)\// }, async (args) => {
        if (args.pluginData === "resolving") {
          return undefined;
        }
        return build.resolve(args.path, {
          kind: args.kind,
          resolveDir: here,
          pluginData: "resolving",
        });
      });
    },
  };
}
