import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { canonicalDomain, stackNameForDomain } from "../../infra/naming";
import { isFixtureStack } from "../support/warm-stack";

/** The sweep before the suites (support/quiet-swarm.ts) removes what this accepts: it must never take an operator's stack. */
describe("the fixture stacks the sweep removes", () => {
  const BED = "warm.test";

  it("takes the warm-stack fixtures' Keycloak and Traefik stacks", () => {
    fc.assert(
      fc.property(fc.constantFrom("kc", "tr"), fc.stringMatching(/^[0-9a-f]{6}$/), (prefix, hex) => {
        assert.ok(isFixtureStack(stackNameForDomain(`${prefix}-${hex}.${BED}`), BED));
      }),
    );
  });

  it("leaves the product's own stacks, the shared Keycloak, the proxy and other domains", () => {
    for (const stack of [
      stackNameForDomain(`keycloak.${BED}`),
      stackNameForDomain(`traefik.${BED}`),
      stackNameForDomain(canonicalDomain("custom-html", BED)),
      stackNameForDomain(`kc-shared.${BED}`),
      stackNameForDomain(`kc-0a1b2c.example.org`),
      stackNameForDomain(`kc-0a1b2c.sub.${BED}`),
      "bedproxy",
    ]) {
      assert.equal(isFixtureStack(stack, BED), false, stack);
    }
  });
});
