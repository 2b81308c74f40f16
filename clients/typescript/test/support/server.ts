/**
 * The real killbill-auth for the tests: the release binary (`../../target/release/killbill-auth`,
 * or KILLBILL_AUTH_BIN) on a free port of 127.0.0.1, with a fresh SQLite database in a temporary
 * folder, cheap password hashing and whatever settings a test asks for. Stopped with SIGTERM
 * (SIGKILL if it lingers) and its folder removed, also when a test fails or the run is cut short.
 */

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The package's folder (this file runs from build/test/support/). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export const BINARY = process.env.KILLBILL_AUTH_BIN
  ? resolve(process.env.KILLBILL_AUTH_BIN)
  : resolve(PACKAGE_ROOT, "..", "..", "target", "release", "killbill-auth");

export interface Server {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** The environment the server runs with (the CLI runs with the same). */
  readonly env: NodeJS.ProcessEnv;
  /** The temporary folder of its database. */
  readonly dir: string;
  /** Runs `killbill-auth ARGS` against the same database; answers its standard output. */
  cli(args: string[], input?: string): Promise<string>;
  /** SIGTERM, wait for the exit (SIGKILL after 5 s), remove the folder. Safe to call twice. */
  stop(): Promise<void>;
  /** What the server wrote to stderr lately, for a failure's message. */
  log(): string;
}

/** Settings every test server gets, before the test's own. */
const BASE_SETTINGS: Record<string, string> = {
  KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB: "64",
  KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS: "1",
  // Every test signs up from 127.0.0.1: keep the sign-up throttle out of the way.
  KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK: "10000",
  KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_WIDE_NETWORK: "10000",
};

const running = new Set<ChildProcess>();
const stopAll = () => {
  for (const child of running) child.kill("SIGTERM");
};
process.once("exit", stopAll);
// A test run cut short (Ctrl-C, the runner's own SIGTERM) stops the servers too.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    stopAll();
    process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const)[signal]);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

function cleanEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("KILLBILL_AUTH_")) env[name] = value;
  }
  env.RUST_LOG = process.env.RUST_LOG ?? "warn";
  return env;
}

async function waitUntilUp(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`killbill-auth exited (${child.exitCode ?? child.signalCode}) before answering:\n${log()}`);
    }
    try {
      const response = await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) {
        await response.text();
        return;
      }
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`killbill-auth did not answer GET / within 20 s:\n${log()}`);
}

/** Starts a server with `settings` (`KILLBILL_AUTH_<SECTION>_<KEY>` variables). */
export async function startServer(settings: Record<string, string> = {}): Promise<Server> {
  if (!existsSync(BINARY)) {
    throw new Error(`no killbill-auth binary at ${BINARY}: run \`cargo build --release\` in the repository, or set KILLBILL_AUTH_BIN`);
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "killbill-auth-ts-"));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env: NodeJS.ProcessEnv = {
      ...cleanEnvironment(),
      ...BASE_SETTINGS,
      KILLBILL_AUTH_SERVER_LISTEN: `127.0.0.1:${port}`,
      KILLBILL_AUTH_DATABASE_URL: `sqlite://${join(dir, "kb.db")}`,
      ...settings,
    };
    const child = spawn(BINARY, ["serve"], { env, cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    let stderr = "";
    const keep = (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-16_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    };
    const server: Server = {
      url,
      env,
      dir,
      log: () => stderr,
      stop,
      cli: (args, input) => runCli(args, env, input),
    };
    try {
      await waitUntilUp(url, child, () => stderr);
      return server;
    } catch (e) {
      lastError = e;
      await stop();
      // Most likely the port was taken between the probe and the bind: try another.
    }
  }
  throw lastError;
}

function runCli(args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<string> {
  return new Promise((resolveOut, reject) => {
    const child = spawn(BINARY, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    child.once("error", reject);
    child.once("close", (code) => {
      if (code === 0) resolveOut(stdout);
      else reject(new Error(`killbill-auth ${args[0]} ${args[1] ?? ""} exited ${code}: ${stderr.trim()}`));
    });
    child.stdin.end(input ?? "");
  });
}
