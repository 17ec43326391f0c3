// Every side-by-side bench in turn, each in a process of its own, with the flags given here
// (--rounds N, --smoke); their Markdown tables on stdout and, with --json FILE, their reports in one
// JSON file. Stops at the first bench that fails.
//   npm run bench -- [--rounds N] [--smoke] [--json FILE]
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { booleanFlag, numberFlag, stringFlag } from "./support";

const BENCHES = ["mechanisms", "realms", "commands", "runs"] as const;

async function main(): Promise<void> {
  const smoke = booleanFlag("--smoke");
  const rounds = process.argv.includes("--rounds") ? numberFlag("--rounds", 1, 50) : undefined;
  const jsonFile = stringFlag("--json");
  const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-bench-"));
  try {
    const reports: Record<string, unknown> = {};
    for (const bench of BENCHES) {
      const file = path.join(dir, `${bench}.json`);
      console.error(`[bench] ${bench}: start`);
      const flags = [...(smoke ? ["--smoke"] : []), ...(rounds === undefined ? [] : ["--rounds", String(rounds)]), "--json", file];
      await execa(process.execPath, [path.join(__dirname, `${bench}.js`), ...flags], { stdout: "inherit", stderr: "inherit" });
      reports[bench] = JSON.parse(await readFile(file, "utf8")) as unknown;
      console.log("");
    }
    if (jsonFile) await writeFile(jsonFile, `${JSON.stringify({ at: new Date().toISOString(), benches: reports }, null, 2)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
