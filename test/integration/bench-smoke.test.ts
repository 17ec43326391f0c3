import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "../support/pulumi-project";

interface Row {
  what: string;
  floor: string;
  samples: number[];
  floorSamples: number[];
  ratio: number;
}

/** Each bench's rows at --smoke, by what they measure and the floor they stand beside. */
const BENCHES = [
  {
    script: "mechanisms",
    about: "each mechanism and its floor",
    rows: [
      ["snapshot take, 10 MB", "tar + sync + sha256sum"],
      ["snapshot restore, 10 MB", "delete + untar + sync"],
      ["runner start (`warmstack --version`)", "`node -e 0`"],
    ],
  },
  {
    script: "commands",
    about: "preview and status on a warm stack with nothing to change, each beside its engine floor",
    rows: [
      ["`warmstack preview`, nothing to change", "bare preview of an empty program"],
      ["`warmstack preview`, nothing to change", "bare preview of one no-op dynamic resource"],
      ["`warmstack status`", "bare read of the warm stack's outputs"],
    ],
  },
  {
    script: "realms",
    about: "a run's realm on the shared Keycloak beside the raw admin REST sequence",
    rows: [["realm create + verify + delete, 0 other realms", "raw REST: token, POST, grant, DELETE"]],
  },
  {
    script: "runs",
    about: "whole runs: quick against cold, orchestration against the engine, the warm realm against a co-deployed Keycloak, concurrency, memory",
    rows: [
      ["keycloak: quick run", "cold run (Keycloak's first boot)"],
      ["custom-html: quick run", "cold run (no first boot)"],
      ["a cold run's orchestration (custom-html)", "bare up + destroy of one no-op dynamic resource"],
      ["sso-app cold, realm on the shared Keycloak", "sso-app cold, Keycloak of its own"],
      ["2 concurrent cold runs (custom-html), wall", "one cold run"],
    ],
    // Four Keycloak boots and nine runs, each waiting for a boot slot behind the suites beside it.
    timeoutMs: 3_000_000,
  },
];

/** The benchmarks keep working: each runs once at its smallest size; nothing is asserted about speed. */
describe("benchmarks in --smoke mode", () => {
  for (const bench of BENCHES) {
    const timeoutMs = ("timeoutMs" in bench ? bench.timeoutMs : undefined) ?? 800_000;
    it(`bench/${bench.script}.ts measures ${bench.about}, and writes the table and the JSON`, { timeout: timeoutMs + 100_000 }, async (t) => {
      const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-bench-smoke-"));
      t.after(() => rm(dir, { recursive: true, force: true }));
      const file = path.join(dir, `${bench.script}.json`);
      const ran = await execa(process.execPath, [path.join(REPO_ROOT, "dist", "bench", `${bench.script}.js`), "--smoke", "--json", file], { reject: false, all: true, timeout: timeoutMs });
      assert.equal(ran.exitCode, 0, String(ran.all));
      const written = JSON.parse(await readFile(file, "utf8")) as { rows: Row[]; memory?: Record<string, Record<string, { peakMb: number }>>; previewPhasesMs?: Record<string, number> };
      assert.deepEqual(written.rows.map((row) => [row.what, row.floor]), bench.rows);
      for (const row of written.rows) {
        assert.ok(row.samples.length > 0 && row.floorSamples.length === row.samples.length, `${row.what}: one floor sample per sample`);
        assert.ok(Number.isFinite(row.ratio) && row.ratio > 0, `${row.what}: ratio ${row.ratio}`);
        const escaped = row.what.replace(/[.*+?^${}()|[\]\\`]/g, "\\$&");
        assert.match(ran.stdout, new RegExp(`^\\| ${escaped} \\| [0-9.]+ s \\| .+ \\| [0-9.]+ s \\| [0-9.]+× \\|`, "m"), `${row.what}: a row of the Markdown table`);
      }
      if (bench.script === "commands") {
        const phases = written.previewPhasesMs ?? {};
        assert.deepEqual(Object.keys(phases), ["select", "recover", "prepare", "engine"], "the preview's phases");
        assert.ok(phases.engine! > 0 && Object.values(phases).every((ms) => ms >= 0), `the preview's phases: ${JSON.stringify(phases)}`);
        assert.match(ran.stdout, /^\| the engine: the program and its live reads \| [0-9.]+ s \|$/m, "the breakdown's engine row");
      }
      if (bench.script === "runs") {
        for (const lane of ["cold", "quick"]) {
          for (const role of ["runner", "pulumi CLI", "dynamic providers", "whole run"]) {
            assert.ok((written.memory?.[lane]?.[role]?.peakMb ?? 0) > 0, `the ${lane} runs' peak memory of the ${role}: ${JSON.stringify(written.memory?.[lane])}`);
          }
        }
        assert.match(ran.stdout, /^\| runner \| [0-9]+ MB \(largest [0-9]+ MB\) \| [0-9]+ MB \(largest [0-9]+ MB\) \|$/m, "the memory table's runner row");
      }
    });
  }
});
