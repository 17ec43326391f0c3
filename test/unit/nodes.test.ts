import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { NODE_DOCKER_HOSTS_ENV, parseNodeDockerHosts } from "../../infra/node-hosts";
import { assertNodeName } from "../../infra/naming";
import { nodeUsable } from "../../infra/placement";

describe("swarm nodes: names, endpoints, usability", () => {
  it("reads each node's Docker endpoint from WARMSTACK_NODE_DOCKER_HOSTS", () => {
    const hosts = parseNodeDockerHosts(" node-2=unix:///run/node2/docker.sock, db.ci.example=ssh://ci@db.ci.example:2222 ,n3=tcp://10.0.0.3:2376");
    assert.deepEqual([...hosts], [
      ["node-2", "unix:///run/node2/docker.sock"],
      ["db.ci.example", "ssh://ci@db.ci.example:2222"],
      ["n3", "tcp://10.0.0.3:2376"],
    ]);
    assert.equal(parseNodeDockerHosts(undefined).size, 0);
    assert.equal(parseNodeDockerHosts("").size, 0);
  });

  it("refuses a malformed entry, naming the variable and what is wrong", () => {
    for (const [text, problem] of [
      ["node-2", /endpoint of node node-2 must be/],
      ["node-2=http://x", /endpoint of node node-2 must be/],
      ["-H=unix:///x", /is not a swarm node hostname/],
      ["n=unix:///a,n=unix:///b", /node n is named twice/],
      ["n=unix:///a b", /endpoint of node n must be/],
    ] as const) {
      assert.throws(() => parseNodeDockerHosts(text), (error: Error) => error.message.startsWith(`${NODE_DOCKER_HOSTS_ENV}`) && problem.test(error.message), text);
    }
  });

  it("accepts only hostnames as node names, whatever else it is given", () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        let accepted = true;
        try {
          assertNodeName(text);
        } catch {
          accepted = false;
        }
        if (accepted) assert.match(text, /^[A-Za-z0-9.-]+$/, "nothing a shell, a path or a constraint could read as syntax");
        if (/[\s=/,'"$;]/.test(text) || text.startsWith("-") || text === "") assert.equal(accepted, false, JSON.stringify(text));
      }),
    );
  });

  it("a pinned app can run only on a node that is ready and active", () => {
    const node = { id: "abc", hostname: "n2", state: "ready", availability: "active", self: false };
    assert.deepEqual(nodeUsable(node), { usable: true });
    assert.deepEqual(nodeUsable(undefined), { usable: false, why: "has left the swarm" });
    assert.deepEqual(nodeUsable({ ...node, state: "down" }), { usable: false, why: "is down" });
    assert.deepEqual(nodeUsable({ ...node, availability: "drain" }), { usable: false, why: "is ready but its availability is drain" });
  });
});
