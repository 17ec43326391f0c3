import { after, before, describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "../support/pulumi-project";

// Debian's nix.conf names the nixbld group, which root evaluating without a daemon neither has nor
// needs: without this every call warns about it.
const NIX_OPTIONS = ["--option", "build-users-group", ""];

function nixInstantiate(args: readonly string[]) {
  return execa("nix-instantiate", [...NIX_OPTIONS, ...args], { cwd: REPO_ROOT, reject: false });
}

const SKIPPED_DIRS = new Set([".git", "node_modules", "dist"]);

async function nixFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory() && !SKIPPED_DIRS.has(entry.name)) found.push(...(await nixFiles(full)));
    else if (entry.isFile() && entry.name.endsWith(".nix")) found.push(path.relative(REPO_ROOT, full));
  }
  return found.sort();
}

before(async () => {
  const version = await nixInstantiate(["--version"]);
  if (version.failed) {
    throw new Error(`nix-instantiate is not usable (${version.message}): install Debian's nix-bin with test/bed/setup.sh nix`);
  }
});

describe("every .nix file of the repository parses", () => {
  it("nix-instantiate --parse accepts each of them", async () => {
    const files = await nixFiles(REPO_ROOT);
    for (const expected of ["nix/module.nix", "nix/package.nix", "nix/tests/eval.nix"]) {
      assert.ok(files.includes(expected), `${expected} is among the files checked (${files.join(", ")})`);
    }
    const failures: string[] = [];
    for (const file of files) {
      const result = await nixInstantiate(["--parse", file]);
      if (result.exitCode !== 0) failures.push(`${file}:\n${result.stderr}`);
    }
    assert.deepEqual(failures, []);
  });

  describe("the check can fail", () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-nix-parse-"));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    for (const [name, text, reason] of [
      ["a syntax error", "{ lib, ... }: { services = { };\n", /syntax error/],
      ["an undefined variable", "{ lib, ... }: { x = lib.mkIf true libb; }\n", /undefined variable 'libb'/],
    ] as const) {
      it(`refuses ${name}`, async () => {
        const file = path.join(dir, `${name.replace(/\W+/g, "-")}.nix`);
        await writeFile(file, text);
        const result = await nixInstantiate(["--parse", file]);
        assert.notEqual(result.exitCode, 0, `nix-instantiate --parse accepted ${name}`);
        assert.match(result.stderr, reason);
      });
    }
  });
});

// The module evaluated with nixpkgs' lib (nix/tests/eval.nix). nixpkgs cannot be had on this
// project's machines; any Nix user's machine has it on NIX_PATH.
describe("the NixOS module, evaluated with nixpkgs' lib", () => {
  let nixpkgsFound = false;

  before(async () => {
    nixpkgsFound = (await nixInstantiate(["--find-file", "nixpkgs/lib"])).exitCode === 0;
  });

  /** Skips the test, saying why, when there is no nixpkgs to evaluate with. */
  function needsNixpkgs(t: TestContext): boolean {
    if (nixpkgsFound) return true;
    t.skip(`no <nixpkgs> on NIX_PATH (${process.env.NIX_PATH || "unset"}): evaluating the module needs nixpkgs' lib; only the parse of the .nix files was checked`);
    return false;
  }

  const SETTINGS = `{
    services.warmstack = {
      enable = true;
      catalogue = "/etc/warmstack/catalogue.yaml";
      baseDomain = "ci.example.org";
    };
    virtualisation.docker.enable = true;
  }`;
  const SECRETS = `{
    services.warmstack.secrets = {
      passphraseFile = "/run/keys/warmstack/passphrase";
      keycloakAdminPasswordFile = "/run/keys/warmstack/keycloak";
      alertWebhookUrlFile = "/run/keys/warmstack/alerts";
      forgeTokenFile = "/run/keys/warmstack/forge";
      webhookSecretFile = "/run/keys/warmstack/webhook";
    };
  }`;
  const BRIDGE = `{ services.warmstack.bridge = { enable = true; forgeUrl = "https://git.example.org"; }; }`;

  type Unit = {
    serviceConfig: Record<string, unknown> & { LoadCredential?: string[] };
    environment: Record<string, string>;
    [key: string]: unknown;
  };
  interface Evaluation {
    package: string;
    docker: string;
    services: Record<string, Unit>;
    timers: Record<string, { wantedBy: string[]; timerConfig: Record<string, unknown> }>;
    users: Record<string, { isSystemUser: boolean; group: string; extraGroups: string[]; home: string }>;
    groups: Record<string, unknown>;
    failedAssertions: string[];
    warnings: string[];
  }

  /** Evaluates the module with these modules on top of one another (Nix expressions). */
  async function evaluate(...modules: string[]) {
    return nixInstantiate([
      "--eval",
      "--strict",
      "--json",
      "--store",
      "dummy://",
      "nix/tests/eval.nix",
      "--arg",
      "settings",
      `{ imports = [ ${modules.join(" ")} ]; }`,
    ]);
  }

  async function evaluation(...modules: string[]): Promise<Evaluation> {
    const result = await evaluate(...modules);
    assert.equal(result.exitCode, 0, `the evaluation failed:\n${result.stderr}`);
    return JSON.parse(result.stdout) as Evaluation;
  }

  /** The option's path as the module system quotes it in its errors. */
  function naming(option: string): RegExp {
    return new RegExp(`\`${option.replace(/\./g, "\\.")}['\`]`);
  }

  it("enabled: a oneshot runs the package's `warmstack nightly` from a persistent, randomly delayed timer", async (t) => {
    if (!needsNixpkgs(t)) return;
    const result = await evaluation(SETTINGS);
    assert.deepEqual(result.failedAssertions, []);
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(Object.keys(result.services), ["warmstack-nightly"]);
    const nightly = result.services["warmstack-nightly"];
    assert.equal(nightly.serviceConfig.Type, "oneshot");
    assert.equal(nightly.serviceConfig.ExecStart, `${result.package}/bin/warmstack nightly --max-tests 10`);
    assert.deepEqual(nightly.path, [result.package, result.docker], "the daemon's own docker CLI is on PATH");
    assert.deepEqual(result.timers["warmstack-nightly"], {
      description: "warmstack nightly",
      wantedBy: ["timers.target"],
      timerConfig: { OnCalendar: "03:00", Persistent: true, RandomizedDelaySec: "30min" },
    });
    assert.equal(nightly.wantedBy, undefined, "only the timer starts the nightly");
    assert.equal(nightly.restartIfChanged, false, "a rebuild does not stop a sweep halfway");

    const tuned = await evaluation(SETTINGS, `{ services.warmstack.nightly = { onCalendar = "Mon *-*-* 04:30"; randomizedDelaySec = 600; maxTests = 3; }; }`);
    assert.equal(tuned.services["warmstack-nightly"].serviceConfig.ExecStart, `${tuned.package}/bin/warmstack nightly --max-tests 3`);
    assert.deepEqual(tuned.timers["warmstack-nightly"].timerConfig, { OnCalendar: "Mon *-*-* 04:30", Persistent: true, RandomizedDelaySec: "600" });
  });

  it("enabled: a system user in the docker group, its group, and a hardened unit in the state directory", async (t) => {
    if (!needsNixpkgs(t)) return;
    const result = await evaluation(SETTINGS);
    assert.deepEqual(result.users, {
      warmstack: { isSystemUser: true, group: "warmstack", extraGroups: ["docker"], home: "/var/lib/warmstack", description: "warmstack CI runner" },
    });
    assert.deepEqual(result.groups, { warmstack: {} });
    const { serviceConfig, environment } = result.services["warmstack-nightly"];
    assert.equal(serviceConfig.User, "warmstack");
    assert.equal(serviceConfig.Group, "warmstack");
    assert.equal(serviceConfig.StateDirectory, "warmstack");
    for (const [key, value] of Object.entries({ NoNewPrivileges: true, ProtectSystem: "strict", ProtectHome: true, PrivateTmp: true, KillMode: "mixed" })) {
      assert.equal(serviceConfig[key], value, key);
    }
    assert.deepEqual(environment, {
      HOME: "/var/lib/warmstack",
      WARMSTACK_STATE_DIR: "/var/lib/warmstack",
      WARMSTACK_PROJECT_DIR: "/var/lib/warmstack/project",
      WARMSTACK_CATALOGUE: "/etc/warmstack/catalogue.yaml",
      WARMSTACK_BASE_DOMAIN: "ci.example.org",
      PULUMI_BACKEND_URL: "file:///var/lib/warmstack/pulumi",
    });

    const other = await evaluation(
      SETTINGS,
      `{ services.warmstack = { user = "ci"; group = "ci-runners"; stateDir = "/var/lib/ci/warm"; environment.WARMSTACK_ABRA_DIR = "/var/lib/ci/warm/abra%"; }; }`,
    );
    assert.deepEqual(Object.keys(other.users), ["ci"]);
    assert.equal(other.users.ci.group, "ci-runners");
    assert.deepEqual(Object.keys(other.groups), ["ci-runners"]);
    assert.equal(other.services["warmstack-nightly"].serviceConfig.StateDirectory, "ci/warm");
    assert.equal(other.services["warmstack-nightly"].environment.PULUMI_BACKEND_URL, "file:///var/lib/ci/warm/pulumi");
    // systemd expands `%` specifiers in Environment=: a literal one reaches the runner doubled.
    assert.equal(other.services["warmstack-nightly"].environment.WARMSTACK_ABRA_DIR, "/var/lib/ci/warm/abra%%");
  });

  it("enabled: each start checks that Docker is a swarm manager, unless told not to", async (t) => {
    if (!needsNixpkgs(t)) return;
    const checked = await evaluation(SETTINGS);
    const preStart = String(checked.services["warmstack-nightly"].preStart);
    assert.ok(preStart.includes(`docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'`), preStart);
    assert.match(preStart, /"\$swarm" != "active true"/);
    assert.match(preStart, /docker swarm init/);

    const unchecked = await evaluation(SETTINGS, "{ services.warmstack.swarm.expect = false; }");
    assert.doesNotMatch(String(unchecked.services["warmstack-nightly"].preStart), /docker info/);
    assert.equal(unchecked.warnings.length, 1);
    assert.match(unchecked.warnings[0], /services\.warmstack\.swarm\.expect is false/);
  });

  it("secrets reach each unit only as credentials, and only the ones it needs", async (t) => {
    if (!needsNixpkgs(t)) return;
    const result = await evaluation(SETTINGS, SECRETS, BRIDGE);
    assert.deepEqual(result.failedAssertions, []);
    const expected = {
      "warmstack-nightly": {
        PULUMI_CONFIG_PASSPHRASE_FILE: ["passphrase", "/run/keys/warmstack/passphrase"],
        WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: ["keycloak-admin-password", "/run/keys/warmstack/keycloak"],
        WARMSTACK_ALERT_WEBHOOK_URL_FILE: ["alert-webhook-url", "/run/keys/warmstack/alerts"],
      },
      "warmstack-bridge": {
        PULUMI_CONFIG_PASSPHRASE_FILE: ["passphrase", "/run/keys/warmstack/passphrase"],
        WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE: ["keycloak-admin-password", "/run/keys/warmstack/keycloak"],
        WARMSTACK_ALERT_WEBHOOK_URL_FILE: ["alert-webhook-url", "/run/keys/warmstack/alerts"],
        WARMSTACK_FORGE_TOKEN_FILE: ["forge-token", "/run/keys/warmstack/forge"],
        WARMSTACK_WEBHOOK_SECRET_FILE: ["webhook-secret", "/run/keys/warmstack/webhook"],
      },
    };
    for (const [name, credentials] of Object.entries(expected)) {
      const unit = result.services[name];
      assert.deepEqual(
        [...(unit.serviceConfig.LoadCredential ?? [])].sort(),
        Object.values(credentials).map(([id, file]) => `${id}:${file}`).sort(),
        `${name}: LoadCredential`,
      );
      for (const [variable, [id]] of Object.entries(credentials)) assert.equal(unit.environment[variable], `%d/${id}`, `${name}: ${variable}`);
      const { LoadCredential: _credentials, ...rest } = unit.serviceConfig;
      const elsewhere = JSON.stringify({ ...unit, serviceConfig: rest });
      assert.doesNotMatch(elsewhere, /\/run\/keys/, `${name}: a secret's path appears outside LoadCredential`);
    }
    assert.equal(result.services["warmstack-nightly"].environment.WARMSTACK_FORGE_TOKEN_FILE, undefined);

    const none = await evaluation(SETTINGS);
    assert.deepEqual(none.services["warmstack-nightly"].serviceConfig.LoadCredential, []);
  });

  it("the bridge: a long-running `warmstack serve`, restarted on failure", async (t) => {
    if (!needsNixpkgs(t)) return;
    const result = await evaluation(SETTINGS, SECRETS, BRIDGE);
    const bridge = result.services["warmstack-bridge"];
    assert.equal(bridge.serviceConfig.Type, "simple");
    assert.equal(bridge.serviceConfig.Restart, "on-failure");
    assert.deepEqual(bridge.wantedBy, ["multi-user.target"]);
    assert.equal(bridge.serviceConfig.ExecStart, `${result.package}/bin/warmstack serve --listen 127.0.0.1:47090 --forge-url https://git.example.org`);
    assert.ok(result.services["warmstack-nightly"], "the nightly runs beside the bridge");

    // systemd expands `%` specifiers in ExecStart: a URL-encoded `%` must reach the bridge as is.
    const tuned = await evaluation(
      SETTINGS,
      SECRETS,
      `{ services.warmstack.bridge = { enable = true; listen = "[::1]:8090"; forgeUrl = "https://git.example.org/a%20b"; maxConcurrent = 2; }; services.warmstack.nightly.enable = false; }`,
    );
    assert.deepEqual(Object.keys(tuned.services), ["warmstack-bridge"]);
    assert.deepEqual(tuned.timers, {});
    assert.equal(
      tuned.services["warmstack-bridge"].serviceConfig.ExecStart,
      `${tuned.package}/bin/warmstack serve --listen "[::1]:8090" --forge-url "https://git.example.org/a%%20b" --max-concurrent 2`,
    );
  });

  it("disabled: no units, no user, no group", async (t) => {
    if (!needsNixpkgs(t)) return;
    const result = await evaluation(SETTINGS, SECRETS, BRIDGE, "({ lib, ... }: { services.warmstack.enable = lib.mkForce false; })");
    assert.deepEqual(
      { services: result.services, timers: result.timers, users: result.users, groups: result.groups, failedAssertions: result.failedAssertions },
      { services: {}, timers: {}, users: {}, groups: {}, failedAssertions: [] },
    );
  });

  it("assertions: Docker, the bridge's secrets, and environment variables the module owns", async (t) => {
    if (!needsNixpkgs(t)) return;
    const noDocker = await evaluation(SETTINGS, "({ lib, ... }: { virtualisation.docker.enable = lib.mkForce false; })");
    assert.equal(noDocker.failedAssertions.length, 1);
    assert.match(noDocker.failedAssertions[0], /^services\.warmstack needs Docker: set virtualisation\.docker\.enable = true\..*docker swarm init/);

    const bridgeAlone = await evaluation(SETTINGS, BRIDGE);
    assert.deepEqual(
      bridgeAlone.failedAssertions.map((message) => message.split(":")[0]),
      ["services.warmstack.bridge.enable needs services.warmstack.secrets.forgeTokenFile", "services.warmstack.bridge.enable needs services.warmstack.secrets.webhookSecretFile"],
    );

    const owned = await evaluation(SETTINGS, `{ services.warmstack.environment = { PULUMI_CONFIG_PASSPHRASE = "hunter2"; WARMSTACK_ABRA_DIR = "/var/lib/warmstack/abra"; }; }`);
    assert.equal(owned.failedAssertions.length, 1);
    assert.match(owned.failedAssertions[0], /^services\.warmstack\.environment\.PULUMI_CONFIG_PASSPHRASE is refused: use services\.warmstack\.secrets\.passphraseFile/);
    assert.equal(owned.services["warmstack-nightly"].environment.WARMSTACK_ABRA_DIR, "/var/lib/warmstack/abra", "other variables pass through");
  });

  it("several runners: the coordination database and the host id reach both units, its password only as a credential", async (t) => {
    if (!needsNixpkgs(t)) return;
    const result = await evaluation(
      SETTINGS,
      SECRETS,
      `{ services.warmstack = { coordinationUrl = "postgres://warmstack@db.example.org/warmstack?sslmode=require"; hostId = "runner-b"; nodeDockerHosts = { ci-node-2 = "ssh://warmstack@ci-node-2"; ci-node-3 = "tcp://10.0.0.3:2376"; }; pulumiBackendUrl = "postgres://warmstack@db.example.org/warmstack"; secrets.postgresPassFile = "/run/keys/warmstack/pgpass"; bridge = { enable = true; forgeUrl = "https://git.example.org"; }; }; }`,
    );
    assert.deepEqual(result.failedAssertions, []);
    for (const unit of ["warmstack-nightly", "warmstack-bridge"]) {
      const environment = result.services[unit].environment;
      assert.equal(environment.WARMSTACK_COORDINATION_URL, "postgres://warmstack@db.example.org/warmstack?sslmode=require", unit);
      assert.equal(environment.WARMSTACK_HOST_ID, "runner-b", unit);
      assert.equal(environment.WARMSTACK_NODE_DOCKER_HOSTS, "ci-node-2=ssh://warmstack@ci-node-2,ci-node-3=tcp://10.0.0.3:2376", unit);
      assert.equal(environment.PGPASSFILE, "%d/pgpass", `${unit}: the password file as a credential`);
      assert.ok((result.services[unit].serviceConfig.LoadCredential ?? []).includes("pgpass:/run/keys/warmstack/pgpass"), unit);
    }
  });

  const WITHOUT = (option: "catalogue" | "baseDomain") => `{
    services.warmstack = { enable = true; ${option === "catalogue" ? `baseDomain = "ci.example.org";` : `catalogue = "/etc/warmstack/catalogue.yaml";`} };
    virtualisation.docker.enable = true;
  }`;
  const UNSET = /was accessed but has no value defined/;
  for (const [name, modules, option, reason] of [
    ["a relative secret path", [SETTINGS, `{ services.warmstack.secrets.passphraseFile = "keys/passphrase"; }`], "services.warmstack.secrets.passphraseFile", /is not of type `null or absolute path not in the Nix store'/],
    ["a secret as a Nix path literal (it would be copied into the store)", [SETTINGS, `{ services.warmstack.secrets.webhookSecretFile = /run/keys/webhook; }`], "services.warmstack.secrets.webhookSecretFile", /is not of type `null or absolute path not in the Nix store'/],
    ["an unknown option", [SETTINGS, "{ services.warmstack.nightly.maxTest = 3; }"], "services.warmstack.nightly.maxTest", /does not exist/],
    ["a wrong type", [SETTINGS, `{ services.warmstack.nightly.maxTests = "ten"; }`], "services.warmstack.nightly.maxTests", /is not of type `integer between 0 and 1000/],
    ["an environment value that is not a string", [SETTINGS, "{ services.warmstack.environment.WARMSTACK_ABRA_DIR = 1; }"], "services.warmstack.environment.WARMSTACK_ABRA_DIR", /is not of type `string'/],
    ["a state directory outside /var/lib", [SETTINGS, `{ services.warmstack.stateDir = "/srv/warmstack"; }`], "services.warmstack.stateDir", /is not of type `string matching the pattern/],
    ["a coordination URL with a password (it would land in the store)", [SETTINGS, `{ services.warmstack.coordinationUrl = "postgres://warmstack:hunter2@db.example.org/warmstack"; }`], "services.warmstack.coordinationUrl", /is not of type `null or string matching the pattern/],
    ["a host id with a space", [SETTINGS, `{ services.warmstack.hostId = "runner b"; }`], "services.warmstack.hostId", /is not of type `null or string matching the pattern/],
    ["a node endpoint that is no Docker endpoint", [SETTINGS, `{ services.warmstack.nodeDockerHosts.ci-node-2 = "http://ci-node-2"; }`], "services.warmstack.nodeDockerHosts.ci-node-2", /is not of type `string matching the pattern/],
    ["no catalogue", [WITHOUT("catalogue")], "services.warmstack.catalogue", UNSET],
    ["no base domain", [WITHOUT("baseDomain")], "services.warmstack.baseDomain", UNSET],
    ["a bridge without its forge", [SETTINGS, SECRETS, "{ services.warmstack.bridge.enable = true; }"], "services.warmstack.bridge.forgeUrl", UNSET],
  ] as const) {
    it(`bad input, ${name}: the evaluation fails, naming the option`, async (t) => {
      if (!needsNixpkgs(t)) return;
      const result = await evaluate(...modules);
      assert.notEqual(result.exitCode, 0, `the evaluation succeeded:\n${result.stdout}`);
      assert.match(result.stderr, naming(option));
      assert.match(result.stderr, reason);
    });
  }
});
