import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { describeTarget, planReap, ReapFacts } from "../../infra/reaper";
import { STACK_ATTRIBUTE } from "../../infra/run-realm";

const recipeArb = fc.constantFrom("keycloak", "sso-app", "nextcloud", "a1");
const hexArb = fc.stringMatching(/^[0-9a-f]{6}$/);
const runArb = fc.tuple(recipeArb, hexArb).map(([recipe, hex]) => ({ recipe, hex, stack: `run-${recipe}-${hex}`, realm: `${recipe}-${hex}` }));

const registration = (stack: string, pid: number, live: boolean) => ({ registration: { stack, pid, host: "here", startedAt: "2026-01-01T00:00:00.000Z" }, live });

/** Facts around a set of runs, each live or dead, each with or without its stack, realm, app, lease and registration. */
const factsArb = fc
  .record({
    runs: fc.array(
      fc.record({ run: runArb, live: fc.boolean(), hasStack: fc.boolean(), hasRealm: fc.boolean(), hasApp: fc.boolean(), hasLease: fc.boolean(), hasRegistration: fc.boolean() }),
      { maxLength: 12 },
    ),
    foreignRealms: fc.array(
      fc.oneof(
        runArb.map((run) => ({ realm: run.realm, attributes: {} as Record<string, string> })),
        runArb.map((run) => ({ realm: run.realm, attributes: { other: run.stack } })),
        fc.constant({ realm: "master", attributes: { [STACK_ATTRIBUTE]: "run-keycloak-000000" } }),
        fc.constant({ realm: "master", attributes: {} }),
        runArb.map((run) => ({ realm: "warm-realm", attributes: { [STACK_ATTRIBUTE]: run.stack } })),
      ),
      { maxLength: 6 },
    ),
    otherStacks: fc.array(fc.constantFrom("warm", "dev", "run-x"), { maxLength: 3 }),
  })
  .map(({ runs, foreignRealms, otherStacks }) => {
    const facts: ReapFacts = {
      stacks: [...otherStacks, ...runs.filter((r) => r.hasStack).map((r) => r.run.stack)],
      // A live run is registered by definition.
      registrations: runs.filter((r) => r.live || r.hasRegistration).map((r, n) => registration(r.run.stack, 1000 + n, r.live)),
      realms: [...foreignRealms, ...runs.filter((r) => r.hasRealm).map((r) => ({ realm: r.run.realm, attributes: { [STACK_ATTRIBUTE]: r.run.stack } }))],
      runApps: runs.filter((r) => r.hasApp).map((r) => ({ abraDir: "/abra", server: "default", domain: `${r.run.recipe.slice(0, 4)}-${r.run.hex}.test`, owner: r.run.stack })),
      leases: runs.filter((r) => r.hasLease).map((r) => ({ recipe: r.run.recipe, stack: r.run.stack })),
    };
    return facts;
  });

function ownerOf(decision: ReturnType<typeof planReap>["remove"][number]): string | undefined {
  if (decision.kind === "realm") return decision.owner;
  if (decision.kind === "app") return decision.owner;
  return decision.stack;
}

describe("planReap", () => {
  it("never removes anything of a live run", () => {
    fc.assert(
      fc.property(factsArb, (facts) => {
        const live = new Set(facts.registrations.filter((r) => r.live).map((r) => r.registration.stack));
        for (const decision of planReap(facts).remove) assert.ok(!live.has(ownerOf(decision) ?? ""), JSON.stringify(decision));
      }),
      { numRuns: 500 },
    );
  });

  it("never removes master, a realm without our attribute, or a non-run stack", () => {
    fc.assert(
      fc.property(factsArb, (facts) => {
        for (const decision of planReap(facts).remove) {
          if (decision.kind === "realm") {
            assert.notEqual(decision.realm, "master");
            const realm = facts.realms.find((r) => r.realm === decision.realm && r.attributes[STACK_ATTRIBUTE] === decision.owner);
            assert.equal(realm?.attributes[STACK_ATTRIBUTE], `run-${decision.realm}`);
          }
          if (decision.kind === "stack") assert.match(decision.stack, /^run-[a-z0-9-]+-[0-9a-f]{6}$/);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("removes everything of a dead run, decides every fact once, and gives every decision a reason", () => {
    fc.assert(
      fc.property(factsArb, (facts) => {
        const plan = planReap(facts);
        const live = new Set(facts.registrations.filter((r) => r.live).map((r) => r.registration.stack));
        const factCount = facts.stacks.length + facts.realms.length + facts.runApps.length + facts.leases.length + facts.registrations.length;
        assert.equal(plan.remove.length + plan.keep.length, factCount);
        for (const decision of [...plan.remove, ...plan.keep]) assert.ok(decision.reason.length > 0);
        for (const stack of facts.stacks.filter((s) => /^run-.+-[0-9a-f]{6}$/.test(s) && !live.has(s))) {
          assert.ok(plan.remove.some((d) => d.kind === "stack" && d.stack === stack), stack);
        }
        for (const app of facts.runApps.filter((a) => !live.has(a.owner))) {
          assert.ok(plan.remove.some((d) => d.kind === "app" && d.domain === app.domain), app.domain);
        }
        for (const lease of facts.leases.filter((l) => !live.has(l.stack))) {
          assert.ok(plan.remove.some((d) => d.kind === "lease" && d.recipe === lease.recipe), lease.recipe);
        }
        for (const { registration: r } of facts.registrations.filter((r) => !r.live)) {
          assert.ok(plan.remove.some((d) => d.kind === "registration" && d.stack === r.stack && d.pid === r.pid), r.stack);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("keeps a realm whose owner attribute names another run than its name", () => {
    const plan = planReap({
      stacks: [],
      registrations: [],
      realms: [{ realm: "sso-app-abcdef", attributes: { [STACK_ATTRIBUTE]: "run-sso-app-123456" } }],
      runApps: [],
      leases: [],
    });
    assert.equal(plan.remove.length, 0);
    assert.match(plan.keep[0]!.reason, /not the run stack of this realm/);
  });

  it("keeps the apps and realm of a run registered on another host", () => {
    const plan = planReap({
      stacks: ["run-sso-app-abcdef"],
      registrations: [{ registration: { stack: "run-sso-app-abcdef", pid: 1, host: "elsewhere", startedAt: "2020-01-01T00:00:00.000Z" }, live: true }],
      realms: [{ realm: "sso-app-abcdef", attributes: { [STACK_ATTRIBUTE]: "run-sso-app-abcdef" } }],
      runApps: [{ abraDir: "/abra", server: "default", domain: "sso--abcdef.test", owner: "run-sso-app-abcdef" }],
      leases: [{ recipe: "sso-app", stack: "run-sso-app-abcdef" }],
    });
    assert.deepEqual(plan.remove, []);
    assert.equal(plan.keep.length, 5);
  });

  it("frees the warm stack's lease only when its process is gone, and never puts a canonical back for it", () => {
    const facts = (holderLive: boolean | undefined) => ({
      stacks: ["warm"],
      registrations: [],
      realms: [],
      runApps: [],
      leases: [{ recipe: "custom-html", stack: "warm", pid: 4242, ...(holderLive === undefined ? {} : { holderLive }) }],
    });
    const gone = planReap(facts(false));
    assert.deepEqual(gone.remove.map((d) => [d.kind, describeTarget(d)]), [["lease", "lease of canonical custom-html (held by warm, pid 4242)"]]);
    assert.match(gone.remove[0]!.reason, /process 4242 is gone: the lease is freed; the next up redoes its change/);
    for (const holderLive of [true, undefined]) {
      const plan = planReap(facts(holderLive));
      assert.deepEqual(plan.remove, [], `holderLive ${holderLive}`);
      assert.ok(plan.keep.some((d) => d.kind === "lease" && /warm stack is changing the canonical/.test(d.reason)));
    }
  });

  it("removes a finished run's results only past the retention cut-off, never a live run's or an unreadable one's", () => {
    const old = "2026-01-01T00:00:00.000Z";
    const plan = planReap({
      stacks: [],
      registrations: [{ registration: { stack: "run-sso-app-111111", pid: 1, host: "elsewhere", startedAt: old }, live: true }],
      realms: [],
      runApps: [],
      leases: [],
      results: [
        { stack: "run-sso-app-aaaaaa", finishedAt: old },
        { stack: "run-sso-app-bbbbbb", finishedAt: "2026-03-01T00:00:00.000Z" },
        { stack: "run-sso-app-cccccc", finishedAt: null },
        { stack: "run-sso-app-111111", finishedAt: old },
      ],
      resultsExpireBefore: "2026-02-01T00:00:00.000Z",
    });
    const results = plan.remove.filter((d) => d.kind === "results");
    assert.deepEqual(results.map((d) => describeTarget(d)), ["results of run-sso-app-aaaaaa"]);
    assert.match(results[0]!.reason, /finished 2026-01-01T00:00:00\.000Z, before the retention cut-off 2026-02-01T00:00:00\.000Z/);
    assert.equal(plan.keep.filter((d) => d.kind === "results").length, 0, "kept results are not worth a line each");
    const withoutCutoff = planReap({ stacks: [], registrations: [], realms: [], runApps: [], leases: [], results: [{ stack: "run-sso-app-aaaaaa", finishedAt: old }] });
    assert.deepEqual(withoutCutoff.remove, []);
  });
});
