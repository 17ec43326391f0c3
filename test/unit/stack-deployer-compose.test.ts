import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parse } from "yaml";
import { stampServices } from "../../infra/adapters/stack-deployer";

type Compose = { services: Record<string, { deploy?: { labels?: unknown; endpoint_mode?: string } }> };

describe("compose stamping before a stack deploy", () => {
  const compose = `version: "3.8"
services:
  app:
    image: x
    deploy:
      labels:
        - "traefik.enable=true"
        - "coop-cloud.\${STACK_NAME}.version=1.0.0+1.0"
  worker:
    image: y
    deploy:
      labels:
        coop-cloud.\${STACK_NAME}.version: 1.0.0+1.0
        other: kept
  db:
    image: z
`;

  it("sets the version label on every service, replacing the recipe's own, in list and map form", () => {
    const stamped = parse(stampServices(compose, "app_warm_test", "abc1234", false)) as Compose;
    assert.deepEqual(stamped.services.app!.deploy!.labels, ["traefik.enable=true", "coop-cloud.app_warm_test.version=abc1234"]);
    assert.deepEqual(stamped.services.worker!.deploy!.labels, { other: "kept", "coop-cloud.app_warm_test.version": "abc1234" });
    assert.deepEqual(stamped.services.db!.deploy!.labels, { "coop-cloud.app_warm_test.version": "abc1234" });
    assert.equal(stamped.services.app!.deploy!.endpoint_mode, undefined);
  });

  it("sets endpoint_mode dnsrr everywhere when asked (hosts without IPVS)", () => {
    const stamped = parse(stampServices(compose, "s", "1.0.0+1.0", true)) as Compose;
    for (const service of Object.values(stamped.services)) assert.equal(service.deploy!.endpoint_mode, "dnsrr");
  });

  it("places every service of a pinned app on its node, beside the recipe's own constraints, once", () => {
    const withConstraint = compose.replace("  db:\n    image: z\n", "  db:\n    image: z\n    deploy:\n      placement:\n        constraints: [node.role == worker]\n");
    const stamped = parse(stampServices(stampServices(withConstraint, "s", "1.0.0+1.0", false, "node-2.ci"), "s", "1.0.1+1.0", false, "node-2.ci")) as {
      services: Record<string, { deploy: { placement?: { constraints?: string[] } } }>;
    };
    assert.deepEqual(stamped.services.app!.deploy.placement?.constraints, ["node.hostname == node-2.ci"]);
    assert.deepEqual(stamped.services.worker!.deploy.placement?.constraints, ["node.hostname == node-2.ci"]);
    assert.deepEqual(stamped.services.db!.deploy.placement?.constraints, ["node.role == worker", "node.hostname == node-2.ci"]);
    const unpinned = parse(stampServices(compose, "s", "1.0.0+1.0", false)) as { services: Record<string, { deploy: { placement?: unknown } }> };
    assert.equal(unpinned.services.app!.deploy.placement, undefined, "an unpinned app is placed by the swarm");
  });

  it("refuses a node name that is no hostname before it reaches a constraint", () => {
    assert.throws(() => stampServices(compose, "s", "1.0.0+1.0", false, "a == b"), /node: "a == b" is not a swarm node hostname/);
  });

  it("refuses a compose file without services", () => {
    assert.throws(() => stampServices("version: '3.8'\n", "s", "1.0.0+1.0", false), /no services map/);
  });
});
