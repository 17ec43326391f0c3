import type { LeasedCanonical } from "../../infra/config";

/** A canonical's state as a lease carries it, for tests of leases that never deploy it. */
export const SAMPLE_CANONICAL: LeasedCanonical = {
  domain: "warm-custom-html.warm.test",
  knownGood: "1.0.0+1.0",
  snapshotStore: "warmstack_snapshots",
  helperImage: "warmstack/base:bookworm",
  deployerSettings: { deployer: "stack", abraDir: "/var/lib/warmstack/abra", server: "default", proxyUrl: "http://127.0.0.1:47080", dnsrrEndpoints: true },
  health: { path: "/health" },
  deployTimeoutMs: 60_000,
};
