import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdtemp, rm } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { readRunProgress, recordRunProgress } from "../../infra/adapters/run-progress";

describe("a run's recorded progress", () => {
  it("gives the last lane entered and counts every deploy started, skipping lines that are not events", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "run-progress-"));
    try {
      const file = path.join(dir, "progress.jsonl");
      assert.deepEqual(await readRunProgress(file), { deployAttempts: 0 }, "no file, no progress");
      await recordRunProgress(file, { lane: "quick" });
      await recordRunProgress(file, { deploy: "1.0.0+1.0" });
      await appendFile(file, '{"deploy": "cut off by a ki');
      await appendFile(file, '\n{"lane":"warm"}\n{"other":1}\n');
      await recordRunProgress(file, { deploy: "abc1234" });
      assert.deepEqual(await readRunProgress(file), { lane: "quick", deployAttempts: 2 });
      await recordRunProgress(file, { lane: "cold" });
      assert.equal((await readRunProgress(file)).lane, "cold", "a fallback after the quick lane");
      await recordRunProgress(file, { leaseHeldBy: "run-custom-html-0a1b2c" });
      assert.deepEqual(await readRunProgress(file), { lane: "cold", deployAttempts: 2, leaseHeldBy: "run-custom-html-0a1b2c" }, "a wait for a held lease is no deploy");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("records nothing without a file, and does not fail when its directory is gone", async () => {
    await recordRunProgress(undefined, { lane: "cold" });
    const gone = path.join(os.tmpdir(), `run-progress-gone-${process.pid}`, "progress.jsonl");
    await recordRunProgress(gone, { deploy: "1.0.0+1.0" });
    assert.deepEqual(await readRunProgress(gone), { deployAttempts: 0 });
  });
});
