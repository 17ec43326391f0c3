import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { renderWarmSummary, WarmSummary } from "../../runner/warm-run";

function summary(operation: "preview" | "up", down: boolean): WarmSummary {
  return {
    stack: "warm",
    operation,
    ok: true,
    plan: [{ app: "keycloak", recipe: "keycloak", domain: "keycloak.warm.test", current: "1.1.0+26.7.3", target: "1.1.0+26.7.3", action: "stay", down }],
    holds: [],
    deployed: operation === "up" ? { keycloak: "1.1.0+26.7.3" } : {},
    changes: {},
    fetches: [],
    recovered: { endedPids: [], clearedLocks: [], refreshed: false },
    elapsedMs: 1200,
    phasesMs: { select: 100, recover: 50, prepare: 300, engine: 700 },
  };
}

describe("warm summary: where the time went", () => {
  it("the first line gives the whole and each phase, in order", () => {
    assert.match(renderWarmSummary(summary("preview", false)), /^warm stack preview: ok in 1\.2s \(stack 0\.1s, recovery 0\.1s, fetches and config 0\.3s, engine 0\.7s\)\n/);
  });
});

describe("warm summary: an app that is down at its version", () => {
  it("preview says the up brings it back", () => {
    assert.match(renderWarmSummary(summary("preview", true)), /keycloak \(keycloak\.warm\.test\): stays at 1\.1\.0\+26\.7\.3, DOWN: up brings it back\n/);
  });

  it("up says it was down", () => {
    assert.match(renderWarmSummary(summary("up", true)), /stays at 1\.1\.0\+26\.7\.3, was DOWN\n/);
  });

  it("a healthy app gets no such remark", () => {
    for (const operation of ["preview", "up"] as const) assert.doesNotMatch(renderWarmSummary(summary(operation, false)), /DOWN/);
  });
});

describe("warm summary: a recipe whose remote could not be fetched", () => {
  it("warns that the plan was made from the checkout it has, naming the remote and why", () => {
    const fetches = [
      { recipe: "keycloak", source: "http://127.0.0.1:1/coop-cloud/keycloak.git", outcome: "failed" as const, detail: "fetch: Connection refused" },
      { recipe: "traefik", source: "/srv/remotes/traefik.git", outcome: "fetched" as const },
    ];
    const text = renderWarmSummary({ ...summary("preview", false), fetches });
    assert.match(text, /WARNING recipe keycloak: could not fetch http:\/\/127\.0\.0\.1:1\/coop-cloud\/keycloak\.git; planned from the checkout it has \(fetch: Connection refused\)/);
    assert.doesNotMatch(text, /traefik: could not fetch/);
  });
});
