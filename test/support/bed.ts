import { readFileSync } from "node:fs";
import * as path from "node:path";

export type GiteaRole = "admin" | "maintainer" | "outsider";

/** One of the bed's Gitea users: the files that hold its secrets (0600), never the secrets. */
export interface BedGiteaUser {
  name: string;
  tokenFile: string;
  passwordFile: string;
}

/** The bed's Gitea (test/bed/steps/gitea.sh), on loopback. */
export interface BedGitea {
  url: string;
  version: string;
  /** The organization holding one public repository per fixture recipe. */
  org: string;
  users: Record<GiteaRole, BedGiteaUser>;
}

/** What test/bed/setup.sh wrote in bed.json: where the real test bed is. */
export interface Bed {
  cache: string;
  bin: string;
  recipes: string;
  domain: string;
  proxyNetwork: string;
  proxyPort: number;
  portBase: number;
  pulumiVersion: string;
  keycloakVersions: string[];
  /** Absent in a bed.json written before the gitea step existed. */
  gitea?: BedGitea;
}

let loaded: Bed | undefined;

export function bed(): Bed {
  if (loaded) return loaded;
  const cache = process.env.WARMSTACK_BED_CACHE ?? "/var/cache/warmstack-bed";
  const file = path.join(cache, "bed.json");
  try {
    loaded = JSON.parse(readFileSync(file, "utf8")) as Bed;
  } catch (error) {
    throw new Error(`the test bed is not set up (${file}: ${(error as Error).message}); run test/bed/setup.sh`);
  }
  // The bed's Pulumi CLI and language host come first, for the Automation API and the CLI alike.
  if (!process.env.PATH?.split(":").includes(loaded.bin)) process.env.PATH = `${loaded.bin}:${process.env.PATH ?? ""}`;
  process.env.PULUMI_SKIP_UPDATE_CHECK = "true";
  process.env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION = "true";
  return loaded;
}

export function proxyUrl(): string {
  return `http://127.0.0.1:${bed().proxyPort}`;
}

/** A domain under the bed's base domain that no other test uses. */
export function uniqueDomain(prefix: string): string {
  return `${prefix}-${Math.random().toString(16).slice(2, 8)}.${bed().domain}`;
}
