import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { catalogueEntry, CatalogueError, loadCatalogue } from "../../runner/catalogue";

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");

const madeDirs: string[] = [];
after(async () => {
  for (const dir of madeDirs) await rm(dir, { recursive: true, force: true });
});

async function catalogueFile(text: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "warmstack-catalogue-"));
  madeDirs.push(dir);
  const file = path.join(dir, "catalogue.yaml");
  await writeFile(file, text);
  return file;
}

const VALID_ENTRY = `
    test: { command: [bash, check.sh] }
    health: { path: /health }`;

describe("the recipe catalogue", () => {
  it("loads the repository's catalogue: the fixture recipes with their test commands", async () => {
    const loaded = await loadCatalogue(path.join(REPO_ROOT, "catalogue.yaml"));
    const sso = catalogueEntry(loaded, "sso-app");
    assert.equal(sso.sso, true);
    assert.equal(sso.canonical, true);
    assert.equal(sso.canary, true, "the SSO fixture proves a Keycloak upgrade before the live one moves");
    assert.deepEqual(sso.test.command, ["bash", "test/fixtures/checks/sso-app.sh"]);
    assert.equal(catalogueEntry(loaded, "custom-html").sso, false);
    assert.equal(loaded.dir, REPO_ROOT);
  });

  it("fills the defaults of a minimal entry", async () => {
    const loaded = await loadCatalogue(await catalogueFile(`recipes:\n  myapp:${VALID_ENTRY}\n`));
    const entry = catalogueEntry(loaded, "myapp");
    assert.deepEqual(
      { timeout: entry.test.timeoutSeconds, deploy: entry.deployTimeoutSeconds, sso: entry.sso, canonical: entry.canonical, canary: entry.canary },
      { timeout: 600, deploy: 300, sso: false, canonical: false, canary: false },
    );
  });

  const invalid: [string, string, RegExp][] = [
    ["a deploy timeout that is not a number", `recipes:\n  myapp:${VALID_ENTRY}\n    deployTimeoutSeconds: fast\n`, /recipes\.myapp\.deployTimeoutSeconds/],
    ["an unknown key", `recipes:\n  myapp:${VALID_ENTRY}\n    sso_dependency: true\n`, /recipes\.myapp\.sso_dependency: unknown key/],
    ["a test command given as a shell string", `recipes:\n  myapp:\n    test: { command: "bash check.sh" }\n    health: { path: /health }\n`, /recipes\.myapp\.test\.command/],
    ["an empty test command", `recipes:\n  myapp:\n    test: { command: [] }\n    health: { path: /health }\n`, /recipes\.myapp\.test\.command: must name a program/],
    ["a health path that is not a path", `recipes:\n  myapp:\n    test: { command: [x] }\n    health: { path: "health; rm -rf /" }\n`, /recipes\.myapp\.health\.path/],
    ["a recipe name that could escape a path", `recipes:\n  "../etc":${VALID_ENTRY}\n`, /recipes\.\.\.\/etc/],
    ["no recipes at all", `{}\n`, /recipes/],
    ["a canary that is not an SSO recipe", `recipes:\n  myapp:${VALID_ENTRY}\n    canary: true\n`, /recipes\.myapp\.canary: a canary runs against a copy of the shared Keycloak: only an SSO recipe \(sso: true\)/],
    ["a test timeout of zero", `recipes:\n  myapp:\n    test: { command: [x], timeoutSeconds: 0 }\n    health: { path: /health }\n`, /recipes\.myapp\.test\.timeoutSeconds/],
  ];
  for (const [what, text, field] of invalid) {
    it(`refuses ${what}, naming the file and the field`, async () => {
      const file = await catalogueFile(text);
      await assert.rejects(loadCatalogue(file), (error: Error) => {
        assert.ok(error instanceof CatalogueError);
        assert.ok(error.message.includes(file), error.message);
        assert.match(error.message, field);
        return true;
      });
    });
  }

  it("refuses text that is not YAML, and a missing file, naming the file", async () => {
    const broken = await catalogueFile("recipes: [unclosed\n");
    await assert.rejects(loadCatalogue(broken), new RegExp(`${broken}: not valid YAML`));
    await assert.rejects(loadCatalogue("/nonexistent/catalogue.yaml"), /\/nonexistent\/catalogue\.yaml: cannot read it \(ENOENT\)/);
  });

  it("names --recipe and lists the known recipes for any recipe it does not have", async () => {
    const loaded = await loadCatalogue(path.join(REPO_ROOT, "catalogue.yaml"));
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20 }).filter((name) => !(name in loaded.catalogue.recipes)),
        (name) => {
          assert.throws(() => catalogueEntry(loaded, name), /--recipe: unknown recipe .*known: custom-html, sso-app/);
        },
      ),
    );
  });
});
