import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { waitUntil } from "../../infra/adapters/health";
import { deleteSnapshot, restoreSnapshot, snapshotInfo, takeSnapshot } from "../../infra/adapters/snapshots";
import { docker } from "../../infra/adapters/swarm";
import { assertOneSnapshot, helpersOf, takeHelperWriting } from "../support/canonical-stack";

const IMAGE = "warmstack/base:bookworm";
const RUN = randomBytes(3).toString("hex");
// A store of this run only: the default store (and other runs' snapshots) are never touched.
const STORE = `wstest_snapstore_${RUN}`;
const OPTIONS = { store: STORE, timeoutMs: 120_000 };

const volumes: string[] = [];
const containers: string[] = [];
const apps: string[] = [];

function appKey(name: string): string {
  const app = `wstest-${RUN}-${name}`;
  apps.push(app);
  return app;
}

async function newVolume(name: string): Promise<string> {
  const volume = `wstest-snap-${RUN}-${name}`;
  await docker(["volume", "create", volume]);
  volumes.push(volume);
  return volume;
}

/** Runs a fixed script in a throwaway container with each volume at /v/<volume>. */
async function withVolumes(mounted: readonly string[], script: string, options: { readOnly?: boolean } = {}): Promise<string> {
  const mounts = mounted.flatMap((volume) => ["-v", `${volume}:/v/${volume}${options.readOnly ? ":ro" : ""}`]);
  return docker(["run", "--rm", ...mounts, IMAGE, "bash", "-c", `set -euo pipefail\n${script}`], { timeoutMs: 120_000 });
}

// Names, modes, types, owners, sizes and link targets of every entry, plus the content of every
// regular file. Directory sizes are left out: they depend on the file system's history, not content.
const TREE_HASH = String.raw`cd /v
{
  find . -mindepth 1 \( -type d -printf '%P %m %y %U:%G\n' \) -o -printf '%P %m %y %U:%G %s %l\n' | sort
  find . -type f -print0 | sort -z | xargs -0 -r sha256sum
} | sha256sum | cut -d ' ' -f 1`;

async function treeHash(mounted: readonly string[]): Promise<string> {
  return (await withVolumes(mounted, TREE_HASH, { readOnly: true })).trim();
}

async function fill(a: string, b: string): Promise<void> {
  // Names reach the script as the mount points' directory names, in the order given.
  await withVolumes(
    [a, b],
    String.raw`a=/v/$(ls /v | sort | head -n 1); b=/v/$(ls /v | sort | tail -n 1)
    echo "setting=1" >"$a/app.conf"
    echo hidden >"$a/.dotfile"
    mkdir -p "$a/nested/deeper"
    echo deep >"$a/nested/deeper/file.txt"
    echo private >"$a/private.key"; chmod 0600 "$a/private.key"
    printf '#!/bin/sh\necho hi\n' >"$a/run.sh"; chmod 0755 "$a/run.sh"
    ln -s nested/deeper/file.txt "$a/link"
    echo owned >"$a/owned.txt"; chown 1234:5678 "$a/owned.txt"
    head -c 100000 /dev/urandom >"$b/blob.bin"
    mkdir "$b/.hidden-dir"; echo x >"$b/.hidden-dir/x"`,
  );
}

async function mutate(a: string, b: string): Promise<void> {
  await withVolumes(
    [a, b],
    String.raw`a=/v/$(ls /v | sort | head -n 1); b=/v/$(ls /v | sort | tail -n 1)
    echo "setting=2" >"$a/app.conf"
    echo added >"$a/added.txt"
    rm "$a/nested/deeper/file.txt"
    chmod 0644 "$a/private.key"
    echo new >"$b/.new-dotfile"
    rm -r "$b/.hidden-dir"`,
  );
}

/** Entries of the app's directory in the store. */
async function storeEntries(app: string): Promise<string[]> {
  const output = await docker(["run", "--rm", "-v", `${STORE}:/store:ro`, "-e", `APP=${app}`, IMAGE, "bash", "-c", 'ls -A "/store/$APP" 2>/dev/null || true']);
  return output.split("\n").filter(Boolean).sort();
}

/** Runs a fixed script in the app's directory of the store, as a killed helper or an older version left it. */
async function inStore(app: string, script: string): Promise<void> {
  await docker(["run", "--rm", "-v", `${STORE}:/store`, "-w", `/store/${app}`, IMAGE, "bash", "-c", `set -euo pipefail\n${script}`]);
}

describe("volume snapshots through a helper service on the volumes' node", () => {
  after(async () => {
    for (const app of apps) {
      for (const helper of await helpersOf(app).catch(() => [])) await docker(["service", "rm", helper]).catch(() => undefined);
    }
    for (const container of containers) await docker(["rm", "-f", container]).catch(() => undefined);
    // A removed helper's container goes a moment after its service; until then its volumes are in use.
    for (const volume of [...volumes, STORE]) {
      await waitUntil(
        `volume ${volume} to be removed`,
        async () => {
          try {
            await docker(["volume", "rm", volume]);
            return { done: true, value: undefined };
          } catch (error) {
            if (/no such volume/i.test((error as Error).message)) return { done: true, value: undefined };
            return { done: false, state: (error as Error).message };
          }
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      ).catch(() => undefined);
    }
  });

  it("restores content, modes, owners, links and the set of files exactly", async () => {
    const a = await newVolume("exact-a");
    const b = await newVolume("exact-b");
    const app = appKey("exact");
    await fill(a, b);
    const before = await treeHash([a, b]);

    const taken = await takeSnapshot({ app, volumes: [b, a] }, OPTIONS);
    assert.match(taken.id, /^[0-9a-f]{64}$/);
    assert.ok(taken.bytes > 100_000, `the tar holds the data (${taken.bytes} bytes)`);
    assert.deepEqual(taken.volumes, [a, b]);
    assert.equal(taken.app, app);
    assert.ok(Math.abs(Date.parse(taken.takenAt) - Date.now()) < 60_000, `takenAt ${taken.takenAt} is now`);

    await mutate(a, b);
    assert.notEqual(await treeHash([a, b]), before, "the mutation changed the tree");

    const restored = await restoreSnapshot({ app, volumes: [a, b] }, OPTIONS);
    assert.equal(restored.id, taken.id);
    assert.equal(await treeHash([a, b]), before);
    // Byte-identical: a snapshot of the restored volumes is the very same tar.
    assert.equal((await takeSnapshot({ app, volumes: [a, b] }, OPTIONS)).id, taken.id);
  });

  it("gives unchanged content the same id and keeps exactly one snapshot per app", async () => {
    const a = await newVolume("stable-a");
    const b = await newVolume("stable-b");
    const app = appKey("stable");
    await fill(a, b);

    const first = await takeSnapshot({ app, volumes: [a, b] }, OPTIONS);
    const second = await takeSnapshot({ app, volumes: [a, b] }, OPTIONS);
    assert.equal(second.id, first.id);
    assertOneSnapshot(await storeEntries(app), first.id);

    await mutate(a, b);
    const third = await takeSnapshot({ app, volumes: [a, b] }, OPTIONS);
    assert.notEqual(third.id, first.id);
    assertOneSnapshot(await storeEntries(app), third.id);
    assert.deepEqual(await snapshotInfo(app, OPTIONS), third);
  });

  it("relabels unchanged data with a new version only at the switch, and reads a store of the older layout", async () => {
    const volume = await newVolume("relabel");
    const app = appKey("relabel");
    await withVolumes([volume], 'echo same >"$(echo /v/*)/site.html"');
    const first = await takeSnapshot({ app, volumes: [volume], version: "1.0.0+1" }, OPTIONS);
    // What a take killed after writing its meta and before the switch leaves: the same tar, a second meta.
    await inStore(app, String.raw`meta=$(readlink current)
      sed 's/^version .*/version 1.0.1+1/' "$meta" >"$(echo "$meta" | cut -d . -f 1).0badc0ffee.meta"`);
    assert.equal((await snapshotInfo(app, OPTIONS))?.version, "1.0.0+1", "the known-good's label is untouched");
    assert.equal((await takeSnapshot({ app, volumes: [volume], version: "1.0.1+1" }, OPTIONS)).id, first.id);
    assert.equal((await snapshotInfo(app, OPTIONS))?.version, "1.0.1+1");
    assertOneSnapshot(await storeEntries(app), first.id, "the killed take's meta is gone");

    // A store written before takes had names: current names the tar, one meta per tar.
    await inStore(app, String.raw`meta=$(readlink current); tar=$(echo "$meta" | cut -d . -f 1).tar
      sed 's/^version .*/version 0.9.0+1/' "$meta" >"$(basename "$tar" .tar).meta"; rm -- "$meta"
      ln -sfn -- "$tar" current`);
    assert.equal((await snapshotInfo(app, OPTIONS))?.version, "0.9.0+1");
    await withVolumes([volume], 'echo changed >"$(echo /v/*)/site.html"');
    assert.equal((await restoreSnapshot({ app, volumes: [volume] }, OPTIONS)).id, first.id);
    assert.equal((await withVolumes([volume], 'cat "$(echo /v/*)/site.html"')).trim(), "same");
    await takeSnapshot({ app, volumes: [volume], version: "1.0.1+1" }, OPTIONS);
    assertOneSnapshot(await storeEntries(app), first.id, "the next take moves it to the named layout");
  });

  it("refuses to snapshot or restore while a container, running or not, mounts a volume", async () => {
    const a = await newVolume("busy-a");
    const b = await newVolume("busy-b");
    const app = appKey("busy");
    await fill(a, b);
    const taken = await takeSnapshot({ app, volumes: [a, b] }, OPTIONS);

    const running = `wstest-snap-${RUN}-running`;
    containers.push(running);
    await docker(["run", "-d", "--name", running, "-v", `${a}:/d`, IMAGE, "sleep", "300"]);
    const inUse = new RegExp(`volume ${a.replace(/[.]/g, "\\.")} is in use by container ${running}`);
    await assert.rejects(takeSnapshot({ app, volumes: [a, b] }, OPTIONS), inUse);
    await assert.rejects(restoreSnapshot({ app, volumes: [a, b] }, OPTIONS), inUse);
    await docker(["rm", "-f", running]);

    const stopped = `wstest-snap-${RUN}-created`;
    containers.push(stopped);
    await docker(["create", "--name", stopped, "-v", `${b}:/d`, IMAGE, "true"]);
    await assert.rejects(takeSnapshot({ app, volumes: [a, b] }, OPTIONS), new RegExp(`volume ${b} is in use by container ${stopped}`));
    await docker(["rm", "-f", stopped]);

    assert.deepEqual(await helpersOf(app), [], "no helper was started");
    assert.deepEqual(await snapshotInfo(app, OPTIONS), taken, "the snapshot is untouched");
  });

  it("fails clearly, and leaves the volumes alone, when the app has no snapshot", async () => {
    const a = await newVolume("none-a");
    const b = await newVolume("none-b");
    const app = appKey("none");
    await fill(a, b);
    const before = await treeHash([a, b]);
    await assert.rejects(restoreSnapshot({ app, volumes: [a, b] }, OPTIONS), new RegExp(`there is no snapshot of app ${app} in store ${STORE}`));
    assert.equal(await snapshotInfo(app, OPTIONS), null);
    assert.equal(await treeHash([a, b]), before);
  });

  it("refuses volumes that do not exist instead of creating them", async () => {
    const app = appKey("ghost");
    const ghost = `wstest-snap-${RUN}-ghost`;
    await assert.rejects(takeSnapshot({ app, volumes: [ghost] }, OPTIONS), new RegExp(`volume ${ghost} does not exist`));
    await assert.rejects(docker(["volume", "inspect", ghost]), /no such volume/i);
    await assert.rejects(takeSnapshot({ app: "Bad/App", volumes: [ghost] }, OPTIONS), /^NameError: app:/);
    await assert.rejects(takeSnapshot({ app, volumes: ["../etc"] }, OPTIONS), /volumes\[0\]/);
  });

  it("refuses a snapshot the store has no room for, naming both numbers, and keeps the old one", async () => {
    const data = await newVolume("disk-data");
    const tiny = await newVolume("disk-store");
    // newVolume made a plain volume; the store must be a small file system of its own.
    await docker(["volume", "rm", tiny]);
    await docker(["volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=1m", tiny]);
    // The local driver mounts a tmpfs volume afresh whenever no container holds it: keep one holding it.
    const keeper = `wstest-snap-${RUN}-keeper`;
    containers.push(keeper);
    await docker(["run", "-d", "--name", keeper, "-v", `${tiny}:/store`, IMAGE, "sleep", "300"]);
    const app = appKey("disk");
    const options = { ...OPTIONS, store: tiny };
    await withVolumes([data], "d=$(echo /v/*); head -c 100000 /dev/urandom >\"$d/small.bin\"");
    const old = await takeSnapshot({ app, volumes: [data] }, options);

    await withVolumes([data], "d=$(echo /v/*); head -c 2000000 /dev/urandom >\"$d/large.bin\"");
    await assert.rejects(
      takeSnapshot({ app, volumes: [data] }, options),
      /not enough free disk for a snapshot of app \S+ in store \S+ on node \S+: the volumes hold \d+ bytes, so more than \d+ bytes must be free, but \d+ bytes are available/,
    );
    assert.deepEqual(await snapshotInfo(app, options), old);
    await docker(["rm", "-f", keeper]);
  });

  it("deletes one app's snapshot and no other", async () => {
    const a = await newVolume("delete-a");
    const b = await newVolume("delete-b");
    await fill(a, b);
    const gone = appKey("delete-gone");
    const kept = appKey("delete-kept");
    await takeSnapshot({ app: gone, volumes: [a] }, OPTIONS);
    const keptInfo = await takeSnapshot({ app: kept, volumes: [a, b] }, OPTIONS);

    await deleteSnapshot(gone, OPTIONS);
    assert.equal(await snapshotInfo(gone, OPTIONS), null);
    assert.deepEqual(await storeEntries(gone), []);
    assert.deepEqual(await snapshotInfo(kept, OPTIONS), keptInfo);
    await deleteSnapshot(gone, OPTIONS);
    await docker(["volume", "inspect", STORE]);
  });

  it("keeps the previous snapshot whole when the helper is killed mid-snapshot", async (t) => {
    const big = await newVolume("kill-big");
    const app = appKey("kill");
    await withVolumes([big], "d=$(echo /v/*); head -c 200000000 /dev/urandom >\"$d/random.bin\"; echo one >\"$d/version\"");
    const oldTree = await treeHash([big]);
    const started = Date.now();
    const old = await takeSnapshot({ app, volumes: [big] }, OPTIONS);
    t.diagnostic(`snapshot of 200 MB: ${Date.now() - started} ms, ${old.bytes} bytes`);

    await withVolumes([big], "d=$(echo /v/*); head -c 200000000 /dev/urandom >\"$d/random.bin\"; echo two >\"$d/version\"");
    const attempt = takeSnapshot({ app, volumes: [big] }, OPTIONS).then(
      (info) => ({ info, error: undefined }),
      (error: unknown) => ({ info: undefined, error }),
    );
    // Kill it while it writes the new tar: the partial file exists and the switch has not happened.
    const helper = await takeHelperWriting(app, 60_000);
    await docker(["kill", helper.container]);
    await docker(["service", "rm", helper.name]);
    const outcome = await attempt;
    assert.ok(outcome.error, `the killed snapshot failed (it finished as ${JSON.stringify(outcome.info)})`);
    assert.match(String(outcome.error), /was removed before it finished|failed/);

    assert.deepEqual(await snapshotInfo(app, OPTIONS), old, "current still names the old snapshot");
    await restoreSnapshot({ app, volumes: [big] }, OPTIONS);
    assert.equal(await treeHash([big]), oldTree);

    // The next snapshot clears what the killed one left behind.
    assert.equal((await takeSnapshot({ app, volumes: [big] }, OPTIONS)).id, old.id);
    assertOneSnapshot(await storeEntries(app), old.id);
  });
});
