// Builds the package: generates the protobuf code from ../../proto with buf, then
// compiles src/ to dist/. It is the `prepare` script, which npm also runs in this
// folder when a project installs it with `npm install --install-links PATH`, and
// then without having installed the devDependencies: so it installs them first.
import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const tools = [
  join(modules, "@bufbuild", "buf", "bin", "buf"),
  join(modules, ".bin", "protoc-gen-es"),
  join(modules, "typescript", "bin", "tsc"),
];

/** Runs a command in this folder, echoing it, and fails the build if it fails. */
function run(command, args, env = process.env) {
  console.error(`> ${[command, ...args].join(" ")}`);
  execFileSync(command, args, { cwd: here, stdio: "inherit", env });
}

if (!tools.every((tool) => existsSync(tool))) {
  // npm passes its own settings down as npm_config_* variables; those of the
  // outer install (--omit=dev, --global, --prefix, ...) must not steer this one.
  const outer =
    /^npm_config_(omit|include|production|only|also|dev|global|location|prefix|dry_run|package_lock_only|install_links|workspaces?|include_workspace_root|ignore_scripts|save.*)$/i;
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !outer.test(name)));
  // The same npm that runs this script, when npm runs it.
  const npm = process.env.npm_execpath;
  const [command, prefix] = npm?.endsWith(".js") ? [process.execPath, [npm]] : ["npm", []];
  // --ignore-scripts: not this package's own `prepare` again.
  const args = ["ci", "--include=dev", "--ignore-scripts", "--no-audit", "--no-fund"];
  run(command, [...prefix, ...args], env);
}
run(process.execPath, [tools[0], "generate"]);
// A fresh dist/, without the leftovers of modules since removed.
rmSync(join(here, "dist"), { recursive: true, force: true });
run(process.execPath, [tools[2], "-p", "tsconfig.json"]);
