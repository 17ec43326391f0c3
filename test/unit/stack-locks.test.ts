import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { stackLocks } from "../../runner/stack-locks";
import type { RunnerSettings } from "../../runner/workspace";

/**
 * How a file backend's stack locks are judged: a lock is cleared only when its owner is provably
 * dead — its pid gone, or reused by a program other than the Pulumi CLI — never when it lives, is on
 * another host, or the file is not a lock Pulumi wrote.
 */
let root: string;
let settings: RunnerSettings;
let pulumiLike: ReturnType<typeof spawn>;

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "warmstack-locks-"));
  settings = { backendUrl: `file://${root}`, projectDir: root, stateDir: root, passphraseFile: path.join(root, "passphrase") };
  // A live process whose program is named pulumi, as the CLI holding a lock is.
  await symlink("/bin/sleep", path.join(root, "pulumi"));
  pulumiLike = spawn(path.join(root, "pulumi"), ["600"], { stdio: "ignore" });
});

after(async () => {
  pulumiLike.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

async function lock(stack: string, name: string, content: string): Promise<void> {
  const dir = path.join(root, ".pulumi", "locks", "organization", "warmstack", stack);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, `${name}.json`), content);
}

const owner = (pid: number | undefined, hostname = os.hostname()) => JSON.stringify({ pid, username: "root", hostname, timestamp: "2026-12-01T03:00:00Z" });

describe("the warm stack's locks, judged", () => {
  it("a gone pid is dead; a live pulumi is live; this node process is another program, so dead", async () => {
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    await lock("a", "gone", owner(gone));
    await lock("b", "live", owner(pulumiLike.pid));
    await lock("c", "reused", owner(process.pid));
    assert.deepEqual((await stackLocks(settings, "a")).map((found) => [found.pid, found.owner]), [[gone, "dead"]]);
    assert.deepEqual((await stackLocks(settings, "b")).map((found) => [found.pid, found.owner, found.since]), [[pulumiLike.pid, "live", "2026-12-01T03:00:00Z"]]);
    assert.deepEqual((await stackLocks(settings, "c")).map((found) => found.owner), ["dead"]);
  });

  it("another host's lock cannot be judged here; a file that is not Pulumi's lock is never taken for one", async () => {
    await lock("d", "foreign", owner(1, "another-runner"));
    await lock("e", "garbage", "{ not json");
    await lock("e", "no-pid", JSON.stringify({ hostname: os.hostname() }));
    assert.deepEqual((await stackLocks(settings, "d")).map((found) => [found.owner, found.host]), [["foreign", "another-runner"]]);
    assert.deepEqual((await stackLocks(settings, "e")).map((found) => found.owner).sort(), ["unreadable", "unreadable"]);
  });

  it("reads only the named stack's locks, and none of a backend whose locks it cannot see", async () => {
    assert.deepEqual(await stackLocks(settings, "warm"), []);
    assert.deepEqual(await stackLocks({ ...settings, backendUrl: "s3://bucket/warmstack" }, "a"), []);
  });

  it("a postgres backend it cannot reach is an error naming the database, never its password", async () => {
    await assert.rejects(stackLocks({ ...settings, backendUrl: "postgres://ci:pa55word@127.0.0.1:1/warmstack" }, "warm"), (error: Error) => {
      assert.match(error.message, /the Pulumi backend 127\.0\.0\.1:1\/warmstack could not be read for the locks of warm/);
      assert.doesNotMatch(error.message, /pa55word/);
      return true;
    });
  });
});
