import { existsSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { DeployerSettings } from "../infra/adapters/deployers";
import { releasedVersions } from "../infra/adapters/recipes";
import { Canonical } from "../infra/canonical";
import { CanonicalConfig, ConfigError, WarmConfig } from "../infra/config";
import { canonicalDomain } from "../infra/naming";

/** What the warm stack exports per enrolled recipe (the stack output `canonicals`). */
export interface CanonicalSummary {
  knownGood: string;
  domain: string;
  snapshotId: string;
  snapshotBytes: number;
  seededAt: string;
  /** The swarm node its volumes and snapshot are on (absent: seeded before pinning). */
  node?: string;
}

/** An enrolled recipe must have a checkout, and its known-good must be one of its releases. */
async function checkEnrolled(abraDir: string, recipe: string, canonical: CanonicalConfig): Promise<string | undefined> {
  const recipeDir = path.join(abraDir, "recipes", recipe);
  if (!existsSync(recipeDir)) return `warmstack:canonicals.${recipe}: unknown recipe: there is no checkout at ${recipeDir}`;
  const released = (await releasedVersions(recipeDir)).versions.map((version) => version.raw);
  if (released.includes(canonical.knownGood)) return undefined;
  const shown = released.length > 0 ? released.join(", ") : "none";
  return `warmstack:canonicals.${recipe}.knownGood: ${canonical.knownGood} is not a released version of ${recipe} (released: ${shown})`;
}

/** Registers one Canonical per enrolled recipe, after checking every one of them. */
export async function canonicalResources(config: WarmConfig, settings: DeployerSettings): Promise<Record<string, pulumi.Output<CanonicalSummary>>> {
  const enrolled = Object.entries(config.canonicals);
  const problems = (await Promise.all(enrolled.map(([recipe, canonical]) => checkEnrolled(config.abraDir, recipe, canonical)))).filter(
    (problem): problem is string => problem !== undefined,
  );
  if (problems.length > 0) throw new ConfigError(`warm stack config is invalid:\n${problems.map((problem) => `  ${problem}`).join("\n")}`);

  const summaries: Record<string, pulumi.Output<CanonicalSummary>> = {};
  for (const [recipe, canonical] of enrolled) {
    const resource = new Canonical(recipe, {
      recipe,
      knownGood: canonical.knownGood,
      domain: canonicalDomain(recipe, config.baseDomain),
      health: canonical.health,
      deployTimeoutMs: canonical.deployTimeoutSeconds * 1000,
      ...(canonical.node ? { node: canonical.node } : {}),
      deployerSettings: settings,
      snapshot: { store: config.snapshotStore, helperImage: config.snapshotHelperImage },
      // Required by the config schema while canonicals are enrolled.
      leases: { stateDir: config.stateDir!, waitMs: config.leaseWaitSeconds * 1000 },
    });
    summaries[recipe] = pulumi.output({
      knownGood: resource.knownGood,
      domain: resource.domain,
      snapshotId: resource.snapshotId,
      snapshotBytes: resource.snapshotBytes,
      seededAt: resource.seededAt,
      node: resource.pinnedNode,
    });
  }
  return summaries;
}
