// The warm stack's read-only commands against the engine floor, side by side in one run on the bed,
// alternating, on one warm stack that holds a seeded custom-html canonical (nothing to change):
// - `warmstack preview` against a bare Automation API preview of an empty inline program on the same
//   backend (what the engine costs before warmstack reads anything live), and against one of a
//   single no-op dynamic resource (the engine's cost with one dynamic-provider process, which every
//   warmstack resource has); its JSON summary gives the time of each of its phases;
// - `warmstack status` against a bare Automation API read of the warm stack's outputs (what status
//   must read at the least).
//   npm run bench:commands -- [--rounds N] [--smoke] [--json FILE]
// --smoke runs each once, so CI sees the bench keep working.
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { bed } from "../test/support/bed";
import { CanonicalStackFixture } from "../test/support/canonical-stack";
import type { WarmSummary } from "../runner/warm-run";
import { noopDynamicStack } from "./engine-floor";
import { booleanFlag, Comparison, median, numberFlag, report, timed } from "./support";

const RECIPE = "custom-html";
const KNOWN_GOOD = "1.0.0+1.0";

async function warmstack(fixture: CanonicalStackFixture, args: string[]): Promise<string> {
  const ran = await fixture.runner(args);
  if (ran.exitCode !== 0) throw new Error(`warmstack ${args.join(" ")} failed (exit ${ran.exitCode}):\n${String(ran.all).slice(-3000)}`);
  return String(ran.stdout);
}

type Phases = WarmSummary["phasesMs"];

async function main(): Promise<void> {
  const smoke = booleanFlag("--smoke");
  const rounds = smoke ? 1 : numberFlag("--rounds", 5, 50);
  bed();
  const fixture = await CanonicalStackFixture.create([{ recipe: RECIPE, tags: [KNOWN_GOOD], knownGood: KNOWN_GOOD, deployTimeoutSeconds: 120 }]);
  try {
    console.error(`[bench] seeding the ${RECIPE} canonical at ${KNOWN_GOOD}`);
    const seeded = await fixture.up();
    if (seeded.exitCode !== 0) throw new Error(`seeding failed:\n${seeded.output.slice(-3000)}`);
    const envVars = fixture.project.env();
    const empty = await LocalWorkspace.createOrSelectStack({ projectName: "warmstack-bench-floor", stackName: "empty", program: async () => ({}) }, { envVars });
    const warm = await LocalWorkspace.selectStack({ stackName: "warm", workDir: fixture.project.dir }, { envVars });
    const noop = await noopDynamicStack(envVars);
    const preview: Comparison = { what: "`warmstack preview`, nothing to change", samples: [], floorSamples: [], floor: "bare preview of an empty program", goal: 1.5 };
    const previewOfOne: Comparison = { what: "`warmstack preview`, nothing to change", samples: [], floorSamples: [], floor: "bare preview of one no-op dynamic resource", goal: 1.5 };
    const status: Comparison = { what: "`warmstack status`", samples: [], floorSamples: [], floor: "bare read of the warm stack's outputs" };
    const phases: Phases[] = [];
    try {
      for (let round = 0; round < rounds; round += 1) {
        // One preview between its two floors stands beside each.
        preview.floorSamples.push(await timed(() => empty.preview()));
        const previewed = await timed(async () => phases.push((JSON.parse(await warmstack(fixture, ["preview", "--json"])) as WarmSummary).phasesMs));
        previewOfOne.floorSamples.push(await timed(() => noop.stack.preview()));
        preview.samples.push(previewed);
        previewOfOne.samples.push(previewed);
        status.floorSamples.push(await timed(() => warm.outputs()));
        status.samples.push(await timed(() => warmstack(fixture, ["status"])));
        console.error(`[bench] commands: round ${round + 1}/${rounds} done`);
      }
    } finally {
      await empty.workspace.removeStack("empty", { force: true }).catch(() => undefined);
      await noop.dispose().catch(() => undefined);
    }
    const phaseMedians = Object.fromEntries((["select", "recover", "prepare", "engine"] as const).map((name) => [name, median(phases.map((phase) => phase[name]))])) as Phases;
    const names: Record<keyof Phases, string> = { select: "selecting the stack", recover: "settling a crash", prepare: "fetching recipes, writing config", engine: "the engine: the program and its live reads" };
    const breakdown = ["### Where a no-change preview's time goes (medians)", "", "| phase | time |", "| --- | ---: |", ...(Object.keys(names) as (keyof Phases)[]).map((name) => `| ${names[name]} | ${(phaseMedians[name] / 1000).toFixed(2)} s |`)];
    await report(`warmstack's read-only commands against the engine floor (${rounds} round(s), alternating)`, [preview, previewOfOne, status], { markdown: breakdown, data: { previewPhasesMs: phaseMedians } });
  } finally {
    await fixture.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
