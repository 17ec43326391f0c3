import { after, before, describe, it, TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { waitUntil } from "../../infra/adapters/health";
import { deleteSnapshot, restoreSnapshot, snapshotInfo, takeSnapshot } from "../../infra/adapters/snapshots";
import { deployStack, docker, DockerError, removeStack, volumeExists } from "../../infra/adapters/swarm";
import { stackNameForDomain } from "../../infra/naming";
import { bed, uniqueDomain } from "../support/bed";
import { viaProxy } from "../support/http";
import { NODE_DOCKER_HOSTS_ENV } from "../../infra/node-hosts";
import { baselineOf, assertPutBack, commitOf } from "../support/quick-runs";
import { CanonicalStackFixture, removeVolumeEventually, storeState, treeHash } from "../support/canonical-stack";
import { PulumiProject } from "../support/pulumi-project";
import { runToEnd } from "../support/runs";
import { NODE2_SCRIPT, nodeState, SecondNode, secondNode } from "../support/second-node";
import { sharedKeycloak } from "../support/shared-keycloak";

/**
 * The bed's second swarm node (test/bed/node2.sh) is real and usable for what multi-node warmstack
 * needs: an app pinned to it runs there with its volume on that node's daemon and answers through
 * the host's proxy over the overlay network; a one-shot helper pinned to it mounts that node's
 * volume and its logs reach the host's CLI; afterwards the host is the single-node swarm on
 * 127.0.0.1 it was, its services untouched. While the node is up, services without a constraint
 * may land on it, so this suite runs alone (run-tests.js: `*.exclusive.test.js`).
 */
const RUN = randomBytes(3).toString("hex");
const IMAGE = "warmstack/base:bookworm";
const PROXY_STACK = "bedproxy";

interface Baseline {
  containers: Map<string, string>;
  keycloakDomain: string;
}

function get(pathname: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: "127.0.0.1", port: bed().proxyPort, path: pathname, timeout: 5000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on("timeout", () => request.destroy(new Error(`GET ${pathname}: no answer within 5s`)));
    request.on("error", reject);
  });
}

/** The running container of each of the host's bed services: the same ids before and after mean untouched. */
async function bedContainers(services: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const service of services) {
    const ids = (await docker(["ps", "-q", "--no-trunc", "--filter", `label=com.docker.swarm.service.name=${service}`])).split("\n").filter(Boolean);
    assert.equal(ids.length, 1, `one running container of ${service} on the host, got ${ids.length}`);
    found.set(service, ids[0]!);
  }
  return found;
}

async function answers(what: string, probe: () => Promise<number>, timeoutMs: number): Promise<void> {
  await waitUntil(
    what,
    async () => {
      const status = await probe().catch((error: Error) => error.message);
      return status === 200 ? { done: true, value: undefined } : { done: false, state: `answered ${status}` };
    },
    { timeoutMs, intervalMs: 1000 },
  );
}

interface NodeRow {
  ID: string;
  Hostname: string;
  Status: string;
  Availability: string;
  ManagerStatus: string;
}

async function hostNodes(): Promise<NodeRow[]> {
  return (await docker(["node", "ls", "--format", "{{json .}}"])).split("\n").filter(Boolean).map((line) => JSON.parse(line) as NodeRow);
}

/** The node and state of a service's current task (the one Swarm means to run). */
async function currentTask(service: string): Promise<{ node: string; state: string; error: string } | undefined> {
  const ids = (await docker(["service", "ps", "-q", "--no-trunc", service])).split("\n").filter(Boolean);
  if (ids.length === 0) return undefined;
  // `service ps` lists the newest task of a slot first.
  const [node, state, error] = (await docker(["inspect", "--format", "{{.NodeID}}\t{{.Status.State}}\t{{.Status.Err}}", ids[0]!])).split("\t");
  return { node: node ?? "", state: state ?? "", error: error ?? "" };
}

async function taskInState(service: string, wanted: readonly string[], timeoutMs: number) {
  return waitUntil(
    `a task of ${service} to be ${wanted.join(" or ")}`,
    async () => {
      const task = await currentTask(service);
      if (task && wanted.includes(task.state)) return { done: true, value: task };
      if (task && ["failed", "rejected"].includes(task.state)) throw new Error(`${service}: task ${task.state} on node ${task.node}: ${task.error}`);
      return { done: false, state: task ? `${task.state} on node ${task.node || "<none yet>"} ${task.error}` : "no task yet" };
    },
    { timeoutMs, intervalMs: 500 },
  );
}

async function gone(what: string, list: () => Promise<string>, timeoutMs: number): Promise<void> {
  await waitUntil(
    what,
    async () => {
      const left = (await list()).trim();
      return left === "" ? { done: true, value: undefined } : { done: false, state: `still there: ${left.replace(/\n/g, " ")}` };
    },
    { timeoutMs, intervalMs: 500 },
  );
}

async function removeServiceQuietly(name: string): Promise<void> {
  await docker(["service", "rm", name]).catch((error: unknown) => {
    if (!(error instanceof DockerError && /not found/i.test(error.stderr))) throw error;
  });
}

describe("a second swarm node on the bed", { concurrency: false, timeout: 1_200_000 }, () => {
  let node: SecondNode | undefined;
  let baseline: Baseline;
  /** Enrolled on the worker by one test, looked at again once the worker has left the swarm. */
  let canonicalOnWorker: { fixture: CanonicalStackFixture; v110: string } | undefined;

  before(async () => {
    const keycloak = await sharedKeycloak();
    assert.equal((await docker(["info", "--format", "{{.Swarm.NodeAddr}}"])).trim(), "127.0.0.1");
    await answers("the bed proxy's /ping", () => get("/ping"), 30_000);
    await answers(`the shared Keycloak through the proxy`, async () => (await viaProxy(keycloak.domain, "/realms/master")).status, 120_000);
    baseline = {
      containers: await bedContainers([`${PROXY_STACK}_app`, `${stackNameForDomain(keycloak.domain)}_app`]),
      keycloakDomain: keycloak.domain,
    };
    node = await secondNode();
  });

  after(async () => {
    await canonicalOnWorker?.fixture.dispose();
    // The last test releases it; this is for a run that stopped before it.
    await node?.release();
  });

  it("docker node ls shows two ready nodes: the host's manager and the worker", async () => {
    const nodes = await hostNodes();
    assert.equal(nodes.length, 2, JSON.stringify(nodes));
    assert.ok(nodes.every((row) => row.Status === "Ready"), JSON.stringify(nodes));
    const worker = nodes.find((row) => row.ID === node!.nodeId);
    assert.ok(worker, `the worker ${node!.nodeId} is listed: ${JSON.stringify(nodes)}`);
    assert.equal(worker.Hostname, node!.hostname);
    assert.equal(worker.Availability, "Active");
    assert.equal(worker.ManagerStatus, "");
    assert.equal(nodes.find((row) => row.ID !== node!.nodeId)?.ManagerStatus, "Leader");
    assert.equal((await node!.docker(["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}"])).trim(), `active ${node!.nodeId}`);
    const labels = JSON.parse(await docker(["node", "inspect", node!.nodeId, "--format", "{{json .Spec.Labels}}"])) as Record<string, string>;
    const [key, value] = node!.label.split("=");
    assert.equal(labels[key!], value);
  });

  it("a custom-html stack pinned to the worker runs there, keeps its volume on the worker and answers through the host's proxy", async (t: TestContext) => {
    const domain = uniqueDomain(`n2-${RUN}`);
    const stack = stackNameForDomain(domain);
    const service = `${stack}_app`;
    const volume = `${stack}_content`;
    const work = await mkdtemp(path.join(os.tmpdir(), "ws-node2-"));
    t.after(async () => {
      await removeStack(stack).catch(() => undefined);
      await gone(`the containers of ${stack} on the worker`, () => node!.docker(["ps", "-aq", "--filter", `label=com.docker.stack.namespace=${stack}`]), 60_000);
      await gone(`the services of ${stack}`, () => docker(["service", "ls", "-q", "--filter", `label=com.docker.stack.namespace=${stack}`]), 60_000);
      await node!.docker(["volume", "rm", "-f", volume]);
      await rm(work, { recursive: true, force: true });
    });
    const version = "1.0.0+1.0";
    await execa("bash", ["-c", 'git -C "$1" archive "$2" | tar -x -C "$3"', "_", path.join(bed().recipes, "custom-html"), version, work]);
    // What the product's placement will add: pin the app to the node that holds its volume.
    await writeFile(
      path.join(work, "compose.node2.yml"),
      ["version: \"3.8\"", "services:", "  app:", "    deploy:", "      placement:", "        constraints:", `          - node.id == ${node!.nodeId}`, ""].join("\n"),
    );
    await deployStack(stack, { composeFiles: ["compose.yml", "compose.node2.yml"], env: { STACK_NAME: stack, DOMAIN: domain }, cwd: work, resolveImage: "never" });

    const task = await taskInState(service, ["running"], 120_000);
    assert.equal(task.node, node!.nodeId, "the task runs on the worker");
    assert.notEqual((await node!.docker(["ps", "-q", "--filter", `label=com.docker.swarm.service.name=${service}`])).trim(), "", "its container is on the worker's daemon");
    assert.equal((await docker(["ps", "-aq", "--filter", `label=com.docker.swarm.service.name=${service}`])).trim(), "", "and none on the host's");
    const inspected = JSON.parse(await node!.docker(["volume", "inspect", volume])) as Array<{ Name: string; Labels?: Record<string, string> }>;
    assert.equal(inspected[0]?.Name, volume, "the named volume is on the worker");
    assert.equal(inspected[0]?.Labels?.["com.docker.stack.namespace"], stack);
    assert.equal(await volumeExists(volume), false, "and not on the host");

    // Through the bed's proxy on the host: Traefik (on the manager) reaches the task over the overlay.
    const reply = await waitUntil(
      `${domain}/version through the proxy`,
      async () => {
        const answer = await viaProxy(domain, "/version").catch((error: Error) => ({ status: 0, body: error.message }));
        return answer.status === 200 ? { done: true, value: answer } : { done: false, state: `HTTP ${answer.status}: ${answer.body.slice(0, 200)}` };
      },
      { timeoutMs: 90_000, intervalMs: 1000 },
    );
    assert.equal(reply.body.trim(), "1.0");
    const marker = `written-through-the-proxy-${RUN}`;
    assert.equal((await viaProxy(domain, `/files/marker-${RUN}`, "PUT", marker)).status, 204);
    assert.equal((await viaProxy(domain, `/files/marker-${RUN}`)).body, marker);
    // The write landed in the worker's volume (read on the worker, from a container of its own).
    const onDisk = await node!.docker(["run", "--rm", "-v", `${volume}:/data:ro`, IMAGE, "cat", `/data/marker-${RUN}`]);
    assert.equal(onDisk, marker);
  });

  it("a one-shot service pinned to the worker mounts the worker's volume and its logs are read from the host", async (t: TestContext) => {
    const volume = `wstest-node2-${RUN}`;
    const helper = `wstest-node2-helper-${RUN}`;
    t.after(async () => {
      await removeServiceQuietly(helper);
      await gone(`the containers of ${helper} on the worker`, () => node!.docker(["ps", "-aq", "--filter", `label=com.docker.swarm.service.name=${helper}`]), 60_000);
      await node!.docker(["volume", "rm", "-f", volume]);
    });
    // Data that exists on the worker only, as a data-warm app's volume does.
    await node!.docker(["volume", "create", volume]);
    const content = `data on the worker ${RUN}`;
    await node!.docker(["run", "--rm", "-v", `${volume}:/data`, "-e", `CONTENT=${content}`, IMAGE, "bash", "-c", 'printf "%s\\n" "$CONTENT" >/data/marker']);
    assert.equal(await volumeExists(volume), false, "the volume is not on the host");

    // Like the snapshot helper (infra/adapters/snapshots.ts runHelper).
    await docker([
      "service", "create", "--detach", "--quiet", "--no-resolve-image",
      "--mode", "replicated", "--replicas", "1", "--restart-condition", "none",
      "--name", helper,
      "--constraint", `node.id==${node!.nodeId}`,
      "--log-driver", "json-file",
      "--mount", `type=volume,src=${volume},dst=/volumes/${volume},readonly`,
      IMAGE, "bash", "-c", `cat /volumes/${volume}/marker; echo "files: $(ls /volumes/${volume})"`,
    ]);
    const task = await taskInState(helper, ["complete"], 120_000);
    assert.equal(task.node, node!.nodeId, "the helper ran on the worker");
    assert.equal(await volumeExists(volume), false, "it used the worker's volume: none was created on the host");
    const logs = await waitUntil(
      `the logs of ${helper} on the host`,
      async () => {
        const output = await docker(["service", "logs", "--raw", helper]);
        return output.includes("files: marker") ? { done: true, value: output } : { done: false, state: `logs so far: ${JSON.stringify(output)}` };
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    assert.equal(logs.trim(), `${content}\nfiles: marker`);
  });

  it("the snapshot adapter takes and restores a snapshot of a worker's volume with its helper on the worker", async (t: TestContext) => {
    const volume = `wstest-node2-snap-${RUN}`;
    const store = `wstest_node2_store_${RUN}`;
    const app = `wstest-node2-${RUN}`;
    const options = { store, timeoutMs: 120_000 };
    t.after(async () => {
      await deleteSnapshot(app, { ...options, node: node!.nodeId }).catch(() => undefined);
      for (const name of [volume, store]) await removeVolumeEventually(name, node!.dockerHost);
    });
    const hash = () => node!.docker(["run", "--rm", "-v", `${volume}:/v:ro`, IMAGE, "bash", "-c", "cd /v && find . -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum"]);
    await node!.docker(["volume", "create", volume]);
    await node!.docker(["run", "--rm", "-v", `${volume}:/v`, IMAGE, "bash", "-c", "echo one >/v/a; mkdir /v/d; head -c 50000 /dev/urandom >/v/d/blob"]);
    const before = await hash();
    const taken = await takeSnapshot({ app, volumes: [volume], node: node!.nodeId, version: "1.0.0+1.0" }, options);
    assert.ok(taken.bytes > 50_000, `snapshot of ${taken.bytes} bytes`);
    assert.equal(await volumeExists(store), false, "the store is on the worker, not on the host");
    await node!.docker(["run", "--rm", "-v", `${volume}:/v`, IMAGE, "bash", "-c", "echo two >/v/a; rm -r /v/d; echo new >/v/b"]);
    assert.notEqual(await hash(), before);
    const restored = await restoreSnapshot({ app, volumes: [volume], node: node!.nodeId }, options);
    assert.equal(restored.id, taken.id);
    assert.equal(await hash(), before, "the worker's volume is byte-identical to the snapshot again");
  });

  it("a canonical enrolled on the worker is seeded, lent to a quick run, put back byte-identical and promoted there; drained, its quick runs go cold", async (t: TestContext) => {
    const recipe = "custom-html";
    const [V100, V110] = ["1.0.0+1.0", "1.1.0+1.1"];
    const endpoints = { [NODE_DOCKER_HOSTS_ENV]: `${node!.hostname}=${node!.dockerHost}` };
    // The test process reads the canonical's volumes through the deployer too.
    process.env[NODE_DOCKER_HOSTS_ENV] = endpoints[NODE_DOCKER_HOSTS_ENV];
    const project = await PulumiProject.create({ env: endpoints });
    const fixture = await CanonicalStackFixture.create([{ recipe, tags: [V100, V110], knownGood: V100, node: node!.hostname }], { project });
    canonicalOnWorker = { fixture, v110: "" };
    const seeded = await fixture.up();
    assert.equal(seeded.exitCode, 0, seeded.output);

    const app = fixture.app(recipe);
    assert.equal(((await fixture.canonical(recipe)) as { pinnedNode?: string } | undefined)?.pinnedNode, node!.hostname, "the state records its node");
    assert.equal(await fixture.deployer().pinnedNode(app), node!.hostname, "its env file pins it");
    const volumes = await fixture.deployer().volumes(app);
    assert.ok(volumes.length > 0);
    for (const volume of [...volumes, fixture.snapshotStore]) {
      assert.ok(await volumeExists(volume, node!.dockerHost), `${volume} is on the worker`);
      assert.equal(await volumeExists(volume), false, `${volume} is not on the host`);
    }
    const baseline = await baselineOf(fixture, recipe, V100, node!.dockerHost);
    const status = JSON.parse(String((await fixture.runner(["status", "--json"])).stdout)) as { canonicals: { recipe: string; node?: string; nodeState?: unknown }[] };
    assert.deepEqual(status.canonicals.map((entry) => [entry.recipe, entry.node, entry.nodeState]), [[recipe, node!.hostname, { usable: true }]]);
    assert.match(String((await fixture.runner(["status"])).stdout), new RegExp(`${recipe} .*, idle, on node ${node!.hostname}$`, "m"));

    const v110 = await commitOf(fixture, recipe, V110);
    canonicalOnWorker.v110 = v110;
    const quick = await runToEnd(project, ["run", "--recipe", recipe, "--quick", "--ref", v110]);
    assert.equal(quick.exitCode, 0, quick.output);
    assert.equal(quick.results?.lane, "quick", quick.output);
    assert.equal(quick.results?.outcome, "passed", quick.output);
    assert.deepEqual(quick.results?.fallbacks, []);
    await assertPutBack(fixture, baseline, [quick.stack!]);
    const onlyOnWorker = async (what: string) => {
      for (const volume of volumes) assert.equal(await volumeExists(volume), false, `${what} made no ${volume} on the host: it ran on the worker`);
    };
    await onlyOnWorker("the quick run");

    const promoted = await fixture.runner(["promote", "--recipe", recipe, "--version", V110]);
    assert.equal(promoted.exitCode, 0, String(promoted.all));
    const state = await fixture.canonical(recipe);
    assert.equal(state?.knownGood, V110);
    const store = await storeState(fixture.snapshotStore, fixture.snapshotKey(recipe), node!.dockerHost);
    assert.equal(store.sha, state?.snapshotId, "the known-good snapshot is in the worker's store");
    assert.equal((await snapshotInfo(fixture.snapshotKey(recipe), { store: fixture.snapshotStore, node: node!.nodeId }))?.version, V110, "and it is of the new known-good");
    assert.deepEqual(await fixture.deployer().volumes(app), volumes, "promoted on its own volumes, on the worker");
    await onlyOnWorker("the promote");
    const promotedTree = await treeHash(volumes, node!.dockerHost);

    await docker(["node", "update", "--availability", "drain", node!.nodeId]);
    t.after(() => docker(["node", "update", "--availability", "active", node!.nodeId]));
    assert.match(String((await fixture.runner(["status"])).stdout), new RegExp(`on node ${node!.hostname}, which is ready but its availability is drain: its quick runs fall back to cold`));
    const cold = await runToEnd(project, ["run", "--recipe", recipe, "--quick", "--ref", v110]);
    assert.equal(cold.exitCode, 0, cold.output);
    assert.equal(cold.results?.lane, "cold", cold.output);
    assert.deepEqual(
      cold.results?.fallbacks.map((fallback) => [fallback.from, fallback.to, fallback.reason]),
      [["quick", "cold", `the canonical's volumes are on swarm node ${node!.hostname}, which is ready but its availability is drain`]],
    );
    assert.equal(await treeHash(volumes, node!.dockerHost), promotedTree, "the cold run left the canonical alone");
  });

  it("after down the host is the single-node swarm on 127.0.0.1 again, its proxy and shared Keycloak untouched", async () => {
    const nodeId = node!.nodeId;
    const released = await node!.release();
    node = undefined;
    assert.ok(released.tornDown, `the node was taken down (other users: ${released.otherUsers.join(", ")})`);
    const nodes = await hostNodes();
    assert.equal(nodes.length, 1, JSON.stringify(nodes));
    assert.equal(nodes[0]?.ManagerStatus, "Leader");
    assert.equal((await docker(["info", "--format", "{{.Swarm.NodeAddr}} {{.Swarm.LocalNodeState}}"])).trim(), "127.0.0.1 active");
    assert.match(await nodeState(nodeId), /^not in the host's swarm/);
    assert.equal((await execa("ip", ["netns", "list"])).stdout.includes("warmstack-node2"), false, "the namespace is gone");
    assert.notEqual((await execa("ip", ["link", "show", "ws-node2-h"], { reject: false })).exitCode, 0, "the veth is gone");

    assert.equal(await get("/ping"), 200, "the bed proxy's host-mode port answers");
    assert.equal((await viaProxy(baseline.keycloakDomain, "/realms/master")).status, 200, "the shared Keycloak answers through the proxy");
    assert.deepEqual(await bedContainers([...baseline.containers.keys()]), baseline.containers, "the same containers run: nothing was restarted");

    // A second down finds nothing to do and succeeds.
    const again = await execa("bash", [NODE2_SCRIPT, "down"], { all: true, reject: false, timeout: 300_000 });
    assert.equal(again.exitCode, 0, String(again.all));
  });
  it("a canonical whose node has left the swarm: status says so, its quick runs go cold, and de-enrolling it removes what is left here", async () => {
    assert.ok(canonicalOnWorker, "the canonical on the worker was enrolled");
    const { fixture, v110 } = canonicalOnWorker;
    const recipe = "custom-html";
    assert.match(String((await fixture.runner(["status"])).stdout), /on node warmstack-node2, which has left the swarm: its quick runs fall back to cold/);
    const cold = await runToEnd(fixture.project, ["run", "--recipe", recipe, "--quick", "--ref", v110]);
    assert.equal(cold.exitCode, 0, cold.output);
    assert.equal(cold.results?.lane, "cold", cold.output);
    assert.match(cold.results?.fallbacks[0]?.reason ?? "", /on swarm node warmstack-node2, which has left the swarm$/);
    await fixture.enrol([]);
    const removed = await fixture.up();
    assert.equal(removed.exitCode, 0, removed.output);
    assert.equal(await fixture.canonical(recipe), undefined, "gone from the state");
    assert.equal(await fixture.deployer().appEnv(fixture.app(recipe)), null, "its env file is gone");
  });
});
