import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as os from "node:os";
import fc from "fast-check";
import { coordinationAt, HEARTBEAT_EXPIRY_MS, heartbeatExpiryMs } from "../../infra/adapters/coordination";
import { thisHost } from "../../infra/adapters/liveness";
import { withoutCredentials } from "../../infra/adapters/url-text";

describe("the settings two runners must agree on", () => {
  it("a host id names the runner instead of the machine; a bad one is refused naming the variable", () => {
    assert.equal(thisHost({}), os.hostname());
    assert.equal(thisHost({ WARMSTACK_HOST_ID: "" }), os.hostname());
    assert.equal(thisHost({ WARMSTACK_HOST_ID: "runner-b.ci_2" }), "runner-b.ci_2");
    for (const bad of ["-x", "a b", "a@b", "a/b", "x".repeat(64), "ü"]) {
      assert.throws(() => thisHost({ WARMSTACK_HOST_ID: bad }), /WARMSTACK_HOST_ID must be/, bad);
    }
  });

  it("the heartbeat expiry defaults to two minutes; anything shorter than three heartbeats or not whole seconds is refused", () => {
    assert.equal(heartbeatExpiryMs({}), HEARTBEAT_EXPIRY_MS);
    assert.equal(heartbeatExpiryMs({ WARMSTACK_HEARTBEAT_EXPIRY_SECONDS: "600" }), 600_000);
    for (const bad of ["59", "1.5", "-600", "10m", " 600"]) {
      assert.throws(() => heartbeatExpiryMs({ WARMSTACK_HEARTBEAT_EXPIRY_SECONDS: bad }), /WARMSTACK_HEARTBEAT_EXPIRY_SECONDS must be a whole number of seconds of at least 60/, bad);
    }
  });

  it("the expiry decides liveness by heartbeat for another host's holder", () => {
    const stale = { host: "elsewhere", heartbeatAt: new Date(Date.now() - 300_000).toISOString() };
    assert.equal(coordinationAt("/nonexistent-state", {}).isLive(stale), false, "five minutes without a heartbeat is death by default");
    assert.equal(coordinationAt("/nonexistent-state", { WARMSTACK_HEARTBEAT_EXPIRY_SECONDS: "600" }).isLive(stale), true, "not within a ten-minute expiry");
  });

  it("a URL's password never survives into a message; everything else of it does", () => {
    assert.equal(withoutCredentials("postgres://ci:s3cret@db.example:5432/warmstack?sslmode=require"), "postgres://ci:***@db.example:5432/warmstack?sslmode=require");
    assert.equal(withoutCredentials("postgres://ci@db.example/warmstack"), "postgres://ci@db.example/warmstack");
    assert.equal(withoutCredentials("file:///var/lib/warmstack/pulumi"), "file:///var/lib/warmstack/pulumi");
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9%!$&'()*+,;=._~-]{1,24}$/), (password) => {
        const shown = withoutCredentials(`postgres://ci:${password}@db.example:5432/warmstack`);
        return !shown.includes(`:${password}@`) && shown.includes("db.example:5432/warmstack");
      }),
    );
    assert.doesNotMatch(withoutCredentials("not a url but user:pw@host"), /pw/);
  });
});
