import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { FileCoordination, waitForLease } from "../../infra/adapters/coordination";
import { SAMPLE_CANONICAL as CANONICAL } from "../support/sample-canonical";


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
    const attempts = await Promise.all(stacks.map((stack) => new FileCoordination(dir).tryTakeLease("custom-html", stack, CANONICAL)));
    const winners = attempts.filter((attempt) => attempt.taken);
    assert.equal(winners.length, 1);
    const holder = (await new FileCoordination(dir).readLease("custom-html"))!.stack;
    for (const attempt of attempts) if (!attempt.taken) assert.equal(attempt.holder.stack, holder);
    // No temp files are left beside the lease.
    assert.deepEqual(await readdir(path.join(dir, "leases")), ["custom-html.json"]);
  });

  it("counts a lease its own run already holds as taken (adopted), and carries the canonical", async () => {
    const dir = await stateDir();
    const first = await new FileCoordination(dir).tryTakeLease("custom-html", "run-custom-html-aaaaaa", CANONICAL);
    const again = await new FileCoordination(dir).tryTakeLease("custom-html", "run-custom-html-aaaaaa", CANONICAL);
    assert.deepEqual([first.taken && first.adopted, again.taken && again.adopted], [false, true]);
    assert.deepEqual((await new FileCoordination(dir).readLease("custom-html"))?.canonical, CANONICAL);
  });

  it("is released only by its holder", async () => {
    const dir = await stateDir();
    await new FileCoordination(dir).tryTakeLease("custom-html", "run-custom-html-aaaaaa", CANONICAL);
    assert.equal(await new FileCoordination(dir).releaseLease("custom-html", "run-custom-html-bbbbbb"), false);
    assert.equal((await new FileCoordination(dir).readLease("custom-html"))?.stack, "run-custom-html-aaaaaa");
    assert.equal(await new FileCoordination(dir).releaseLease("custom-html", "run-custom-html-aaaaaa"), true);
    assert.equal(await new FileCoordination(dir).readLease("custom-html"), null);
    assert.deepEqual(await new FileCoordination(dir).listLeases(), []);
  });

  it("gives up waiting at the deadline and names the holder; gets it once it is released", async () => {
    const dir = await stateDir();
    await new FileCoordination(dir).tryTakeLease("custom-html", "run-custom-html-aaaaaa", CANONICAL);
    const gaveUp = await waitForLease(new FileCoordination(dir), "custom-html", "run-custom-html-bbbbbb", CANONICAL, 600);
    assert.equal(gaveUp.lease, null);
    assert.match(gaveUp.lease === null ? gaveUp.holder : "", /held by run-custom-html-aaaaaa/);
    assert.ok(gaveUp.waitedMs >= 600);
    // The holder lets go only once the waiter has been told whom it waits for: the wait provably spans a release.
    const heard: string[] = [];
    const got = await waitForLease(new FileCoordination(dir), "custom-html", "run-custom-html-bbbbbb", CANONICAL, 60_000, async (holder) => {
      heard.push(holder.stack);
      await new FileCoordination(dir).releaseLease("custom-html", "run-custom-html-aaaaaa");
    });
    assert.equal(got.lease?.stack, "run-custom-html-bbbbbb");
    assert.deepEqual(heard, ["run-custom-html-aaaaaa"], "the waiter heard of the holder once");
  });

  it("treats an unreadable lease as an error, never as free", async () => {
    const dir = await stateDir();
    await new FileCoordination(dir).tryTakeLease("custom-html", "run-custom-html-aaaaaa", CANONICAL);
    await writeFile(new FileCoordination(dir).leaseFile("custom-html"), "{not json");
    await assert.rejects(new FileCoordination(dir).readLease("custom-html"), /is not JSON/);
    await assert.rejects(new FileCoordination(dir).tryTakeLease("custom-html", "run-custom-html-bbbbbb", CANONICAL), /is not JSON/);
  });

  it("refuses a recipe name that could leave the lease directory", async () => {
    const dir = await stateDir();
    assert.throws(() => new FileCoordination(dir).leaseFile("../runs/x"), /recipe/);
  });
});
