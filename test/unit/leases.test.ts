import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { leaseFile, listLeases, readLease, releaseLease, tryTakeLease, waitForLease } from "../../infra/adapters/leases";
import type { LeasedCanonical } from "../../infra/config";

const CANONICAL: LeasedCanonical = {
  domain: "warm-custom-html.warm.test",
  knownGood: "1.0.0+1.0",
  snapshotStore: "warmstack_snapshots",
  helperImage: "warmstack/base:bookworm",
  deployerSettings: { deployer: "stack", abraDir: "/var/lib/warmstack/abra", server: "default", proxyUrl: "http://127.0.0.1:47080", dnsrrEndpoints: true },
  health: { path: "/health" },
  deployTimeoutMs: 60_000,
};

const madeDirs: string[] = [];
after(async () => {
  for (const dir of madeDirs) await rm(dir, { recursive: true, force: true });
});

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-leases-"));
  madeDirs.push(dir);
  return dir;
}

describe("canonical leases (files in a real temp dir)", () => {
  it("gives the lease to one of many runs taking it at once, and names the holder to the others", async () => {
    const dir = await stateDir();
    const stacks = Array.from({ length: 12 }, (_, n) => `run-custom-html-${n.toString(16).padStart(6, "0")}`);
    const attempts = await Promise.all(stacks.map((stack) => tryTakeLease(dir, "custom-html", stack, CANONICAL)));
    const winners = attempts.filter((attempt) => attempt.taken);
    assert.equal(winners.length, 1);
    const holder = (await readLease(dir, "custom-html"))!.stack;
    for (const attempt of attempts) if (!attempt.taken) assert.equal(attempt.holder.stack, holder);
    // No temp files are left beside the lease.
    assert.deepEqual(await readdir(path.join(dir, "leases")), ["custom-html.json"]);
  });

  it("counts a lease its own run already holds as taken (adopted), and carries the canonical", async () => {
    const dir = await stateDir();
    const first = await tryTakeLease(dir, "custom-html", "run-custom-html-aaaaaa", CANONICAL);
    const again = await tryTakeLease(dir, "custom-html", "run-custom-html-aaaaaa", CANONICAL);
    assert.deepEqual([first.taken && first.adopted, again.taken && again.adopted], [false, true]);
    assert.deepEqual((await readLease(dir, "custom-html"))?.canonical, CANONICAL);
  });

  it("is released only by its holder", async () => {
    const dir = await stateDir();
    await tryTakeLease(dir, "custom-html", "run-custom-html-aaaaaa", CANONICAL);
    assert.equal(await releaseLease(dir, "custom-html", "run-custom-html-bbbbbb"), false);
    assert.equal((await readLease(dir, "custom-html"))?.stack, "run-custom-html-aaaaaa");
    assert.equal(await releaseLease(dir, "custom-html", "run-custom-html-aaaaaa"), true);
    assert.equal(await readLease(dir, "custom-html"), null);
    assert.deepEqual(await listLeases(dir), []);
  });

  it("gives up waiting at the deadline and names the holder; gets it once it is released", async () => {
    const dir = await stateDir();
    await tryTakeLease(dir, "custom-html", "run-custom-html-aaaaaa", CANONICAL);
    const gaveUp = await waitForLease(dir, "custom-html", "run-custom-html-bbbbbb", CANONICAL, 600);
    assert.equal(gaveUp.lease, null);
    assert.match(gaveUp.lease === null ? gaveUp.holder : "", /held by run-custom-html-aaaaaa/);
    assert.ok(gaveUp.waitedMs >= 600);
    setTimeout(() => void releaseLease(dir, "custom-html", "run-custom-html-aaaaaa"), 300);
    const got = await waitForLease(dir, "custom-html", "run-custom-html-bbbbbb", CANONICAL, 10_000);
    assert.equal(got.lease?.stack, "run-custom-html-bbbbbb");
  });

  it("treats an unreadable lease as an error, never as free", async () => {
    const dir = await stateDir();
    await tryTakeLease(dir, "custom-html", "run-custom-html-aaaaaa", CANONICAL);
    await writeFile(leaseFile(dir, "custom-html"), "{not json");
    await assert.rejects(readLease(dir, "custom-html"), /is not JSON/);
    await assert.rejects(tryTakeLease(dir, "custom-html", "run-custom-html-bbbbbb", CANONICAL), /is not JSON/);
  });

  it("refuses a recipe name that could leave the lease directory", async () => {
    const dir = await stateDir();
    assert.throws(() => leaseFile(dir, "../runs/x"), /recipe/);
  });
});
