// The release-note half of the safety gate: which notes call for manual steps (issue 15, part 1).
// A missed hold can cost data, a false hold costs an alert: both lists below are near misses, and
// each entry is a line a real recipe could ship.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import { MANUAL_STEP_PATTERNS, decide, manualSteps } from "../../infra/gate";

const ROOT = path.resolve(__dirname, "..", "..", "..");
const LABELS = MANUAL_STEP_PATTERNS.map((r) => r.label);

// Lines that tell the operator to do something around the upgrade.
const MUST_HOLD = [
  "Run `abra app cmd <domain> app migrate` after deploying.",
  "Before deploying, back up the database.",
  "After upgrading, regenerate the secret `db_password`.",
  "`abra app secret generate example.com db_password v2`",
  "Execute the upgrade script.",
  "You need to re-insert the SMTP password.",
  "You'll have to recreate the admin user.",
  "Make sure to back up your volumes.",
  "Please run the following command:",
  "Regenerate the secrets.",
  "Rotate the OIDC client secret.",
  "Migrate the data to the new volume.",
  "Backup your data first.",
  "Delete the old `app_data` volume.",
  "Remove `OLD_KEY` from your .env.",
  "Move the config to the new location.",
  "Rename the secret `smtp_pass` to `smtp_password`.",
  "Set `SMTP_TLS=true` in your env file.",
  "Add `COMPOSE_FILE=compose.yml:compose.s3.yml` to your .env",
  "Update your config: the `[auth]` section moved.",
  "Change the admin password after the upgrade.",
  "run `./upgrade.sh` once",
  "Run `php artisan migrate --force`",
  "`occ maintenance:repair` is needed",
  "`rails db:migrate`",
  "`docker exec -it app psql -U postgres -c 'reindex database app'`",
  "Take a backup before the upgrade.",
  "Don't forget to run the migration.",
  "Do not deploy without backing up first.",
  "Do not skip the backup before upgrading.",
  "Never deploy this without running `abra app cmd example.com app migrate` first.",
  "Note: you must regenerate the JWT secret",
  "WARNING: this release renames the database volume.",
  "BREAKING: secrets renamed.",
  "This upgrade cannot be rolled back.",
  "If you use the S3 storage, switch to the new bucket layout.",
  "Operators need to run the reindex.",
  "It is recommended to back up before upgrading.",
  "The `smtp_password` secret must be regenerated.",
  "Migration script: `scripts/migrate-2.0.sh`",
  "No manual steps needed, but run `abra app cmd example.com app reindex` after deploying.",
  "No need to panic: run `abra app cmd <domain> db migrate` after deploying.",
  "Nothing else changes, but you must regenerate the secrets.",
  "The old volume is no longer used, remove it with `docker volume rm example_com_old`.",
  "You no longer need the old `uploads` volume; delete it after upgrading.",
  "Re-import your realm themes.",
  "Prior to upgrading, stop the workers.",
  "Once deployed, run `abra app cmd <domain> app upgrade`.",
  "Drop the old database.",
  "Undeploy the app, then restore the snapshot.",
  "Stop the app and regenerate the secrets.",
  "abra app volume rm example.com",
  "docker exec -it app psql -U postgres",
  "This release requires a database migration.",
  "Follow the upgrade guide in the README.",
  "Manual steps: none, but back up first.",
  "Manual migration required: run it by hand.",
  "Breaking change.",
  "Postgres was upgraded from 12 to 15, so a dump and restore is required.",
  "You must manually migrate the database: see the README.",
  "The `ENABLE_X` option was renamed to `X_ENABLED`. Update your `.env` accordingly.",
];

// Lines that ask for nothing: changelog entries, "nothing to do" in its many forms, code spans that are
// not commands, and the notes of the fixtures' deliberately broken versions.
const CHANGELOG_ONLY = [
  "Bumped upstream to 1.2.3",
  "Fixed the health check",
  "Migrated CI to Drone",
  "Run-time improvements",
  "Update README",
  "Initial release.",
  "Patch: README wording.",
  "Upgrade fixture-app to 1.2.",
  "Upgrade Keycloak to 26.7.3. The database is migrated on first start.",
  "The `APP_ENV` variable now defaults to production.",
  "Pinned the image to `v1.2.3`.",
  "Run the tests.",
  "run `abra app deploy`",
  "Uses `abra app deploy --chaos` in CI.",
  "Run `abra app upgrade <domain>` as usual.",
  "chore: update image to 1.2.3",
  "See https://docs.example.org/upgrade/ for details.",
  "The migration runs automatically on first start.",
  "Improved `docker` image size.",
  "Fixed a crash after upgrading from 1.x.",
  "Backup support via backupbot labels.",
  "Added a healthcheck for the database.",
  "Removed the unused `FOO_BAR` variable.",
  "Please note that the admin UI moved to /admin.",
  "See the README for configuration options.",
  "Works with Keycloak 26 and later.",
  "Healthcheck runs every 30s.",
  "Make the logs quieter.",
  "Add Traefik labels for the dashboard.",
  "Update the image to 26.7.3.",
  "Change the default log level to info.",
  "Renamed the service `app` to `web`.",
  "Drop support for Postgres 12.",
  "Execution time halved.",
  "Docker images are now smaller.",
  "MySQL 8 is now supported.",
  "Bash completion for the entrypoint.",
  "`entrypoint.sh` now waits for the database.",
  "abra.sh: bump the config version.",
  "If you want a search backend, sonic is supported.",
  "Thanks to everyone who tested the release candidate.",
  "Adds SITE_TITLE, which must be set: the app refuses to start without it.",
  "Broken on purpose: references a secret the compose file does not declare (fails validation).",
  "Broken on purpose: runs, but `/health` answers 503.",
  "Broken on purpose: Keycloak refuses an unknown option and exits (never converges).",
];
const NOT_NEEDED = [
  "No manual steps needed",
  "Nothing to do",
  "This release does not require running any migration",
  "No breaking changes.",
  "No action required.",
  "No data loss on restart.",
  "Manual steps: none.",
  "Manual migration is no longer required.",
  "There is no need to regenerate secrets.",
  "You do not have to back up before upgrading.",
  "You don't need to run `abra app cmd <domain> app migrate` any more: the app migrates on start.",
  "Running `abra app cmd <domain> app migrate` by hand is no longer needed.",
  "The database is migrated without manual intervention.",
  "Removes the need to run `abra app cmd <domain> app reindex`.",
  "Doesn't require a manual restart any more.",
  "Nothing to migrate manually.",
  "The upgrade is automatic: nothing to run.",
];
const MUST_NOT_HOLD = [...CHANGELOG_ONLY, ...NOT_NEEDED];

// Held although a reader would let them through: the price of not missing the real ones. Listed so
// that letting one through is a decision, not an accident.
const HELD_IN_DOUBT = [
  "Backups now run before the upgrade.",
  "After upgrading, the login page shows the new theme.",
  "Remove unused volume.",
  "Important: the logo changed.",
  // A conventional-commit line is the maintainers' record, but "fix: rename the secret" would be a
  // step, so the prefix does not excuse it.
  "feat: add S3 backups",
];

// Held only where a line starts: a "WARNING:" in mid-sentence is someone quoting a log.
const LINE_START_ONLY = new Set(["WARNING: this release renames the database volume.", "BREAKING: secrets renamed."]);

describe("release-note table", () => {
  for (const r of MANUAL_STEP_PATTERNS) {
    it(`row "${r.label}": its example holds, on this row`, () => {
      const steps = manualSteps(`Intro.\n\n${r.example}\n`);
      assert.deepEqual(steps.lines, [r.example]);
      assert.ok(steps.rows.includes(r.label), `${r.label} not among ${steps.rows.join(", ")}`);
    });
  }

  it("has unique labels and a reason for every row", () => {
    assert.equal(new Set(LABELS).size, LABELS.length);
    for (const r of MANUAL_STEP_PATTERNS) assert.ok(r.why.length > 10, r.label);
  });

  it("is the table documented in docs/operating.md: same rows, same order, same examples", () => {
    const doc = readFileSync(path.join(ROOT, "docs", "operating.md"), "utf8");
    const section = doc.slice(doc.indexOf("#### Release notes that call for manual steps")).split("\n");
    const header = section.indexOf("| row | what it matches | example | why |");
    assert.ok(header > 0, "the table's header");
    const end = section.findIndex((l, i) => i > header && !l.startsWith("|"));
    const table = section
      .slice(header + 2, end)
      .map((l) => l.split(" | ").map((cell) => cell.replace(/^\| |\s\|$/g, "")));
    assert.deepEqual(
      table.map(([label]) => label),
      LABELS.map((l) => `\`${l}\``),
    );
    for (const [i, cells] of table.entries()) {
      assert.equal(cells.length, 4, `row ${LABELS[i]}: row, what it matches, example, why`);
      assert.equal(cells[2], MANUAL_STEP_PATTERNS[i].example, LABELS[i]);
      assert.ok(cells[1].length > 0 && cells[3].length > 0, LABELS[i]);
    }
  });
});

describe("release-note near misses", () => {
  for (const line of MUST_HOLD) {
    it(`holds ${JSON.stringify(line)}`, () => {
      const steps = manualSteps(`Changes.\n\n${line}\n`);
      assert.deepEqual(steps.lines, [line]);
      assert.ok(steps.rows.length > 0);
    });
  }
  for (const line of MUST_NOT_HOLD) {
    it(`lets ${JSON.stringify(line)} through`, () => {
      assert.deepEqual(manualSteps(line), { lines: [], rows: [] });
    });
  }
  for (const line of HELD_IN_DOUBT) {
    it(`holds, in doubt, ${JSON.stringify(line)}`, () => {
      assert.deepEqual(manualSteps(line).lines, [line]);
    });
  }

  it("has at least 25 of each", () => {
    assert.ok(MUST_HOLD.length >= 25 && MUST_NOT_HOLD.length >= 25);
  });
});

describe("release-note structure", () => {
  it("holds a command on a fenced code line, quoting the command and the line that asks for it", () => {
    const notes = "Run the following:\n\n```sh\npsql -U postgres -c 'reindex database app'\n```\n\nEnjoy.";
    assert.deepEqual(manualSteps(notes), {
      lines: ["Run the following:", "psql -U postgres -c 'reindex database app'"],
      rows: ["command in backticks or a code block", "run something"],
    });
  });

  it("holds a command on an indented code line, but not a program named in prose", () => {
    assert.deepEqual(manualSteps("Cache layout changed.\n\n    rm -rf /var/lib/app/cache\n").lines, ["rm -rf /var/lib/app/cache"]);
    assert.deepEqual(manualSteps("Cache layout changed.\n\nrm and cp are no longer in the image.\n").lines, []);
  });

  it("does not count a fenced block without a command", () => {
    assert.deepEqual(manualSteps("New defaults:\n\n```\nLOG_LEVEL=info\n```\n").lines, []);
  });

  it("takes markdown off: bullets, headings, quotes, check boxes, emphasis", () => {
    const notes = "## 2.0.0\n\n- Bumped upstream\n- **Before upgrading**, take a backup\n> _Regenerate_ the secrets\n1. [ ] Undeploy the app";
    assert.deepEqual(manualSteps(notes).lines, ["- **Before upgrading**, take a backup", "> _Regenerate_ the secrets", "1. [ ] Undeploy the app"]);
  });

  it("quotes a line repeated in the notes once", () => {
    assert.deepEqual(manualSteps("Regenerate the secrets.\nBumped upstream.\nRegenerate the secrets.").lines, ["Regenerate the secrets."]);
  });

  it("finds a phrase hard-wrapped onto the next line", () => {
    assert.deepEqual(manualSteps("Please read this before\nupgrading to 2.x.\nThanks.").lines, ["Please read this before", "upgrading to 2.x."]);
  });

  it("keeps a negation to its own line: the next line's step still holds", () => {
    assert.deepEqual(manualSteps("No manual steps needed for the app\nrun `abra app cmd <domain> app reindex` after deploying").lines, [
      "run `abra app cmd <domain> app reindex` after deploying",
    ]);
  });

  it("keeps a negation to its own clause", () => {
    assert.deepEqual(manualSteps("No breaking changes. After upgrading, regenerate the secrets.").rows, ["before/after deploying", "step verb"]);
    assert.deepEqual(manualSteps("No breaking changes; nothing to do.").lines, []);
  });

  it("names the rows that matched in the hold's detail, and quotes the lines", () => {
    const d = decide({
      app: "app",
      current: "1.0.0+1.0",
      released: ["1.0.0+1.0", "1.1.0+1.0"],
      notes: { "1.1.0+1.0": "Bumped upstream.\n\nBefore deploying, run `abra app cmd <domain> app backup`.\n" },
      envSamples: { "1.1.0+1.0": "TYPE=app\n" },
      currentEnvKeys: ["TYPE"],
    });
    assert.deepEqual(
      d.holds.map((h) => [h.reason, h.detail, h.lines]),
      [
        [
          "manual-steps",
          "the release notes of 1.1.0+1.0 call for manual steps (matched: before/after deploying; command in backticks or a code block; abra app cmd)",
          ["Before deploying, run `abra app cmd <domain> app backup`."],
        ],
      ],
    );
  });

  it("stays fast on long and pathological notes", () => {
    const started = Date.now();
    for (const note of [
      "you will will will ".repeat(5_000),
      ("x ".repeat(50) + ".\n").repeat(1_000),
      "`" + "a.".repeat(20_000),
      "`/" + "a.b/".repeat(10_000),
      "no, ".repeat(20_000),
      "Set your ".repeat(10_000),
    ]) {
      manualSteps(note);
    }
    assert.ok(Date.now() - started < 1_500);
  });
});

// ---- properties ----

const mustHold = fc.constantFrom(...MUST_HOLD);
const mustNotHold = fc.constantFrom(...MUST_NOT_HOLD);

// The same line as an operator might type or a renderer might leave it.
const variant = (line: string) =>
  fc
    .record({
      letters: fc.constantFrom("as is", "upper", "lower"),
      marker: fc.constantFrom("", "- ", "* ", "+ ", "1. ", "> ", "- [ ] ", "### "),
      emphasis: fc.constantFrom("", "**", "_"),
      indent: fc.constantFrom("", " ", "   "),
      gaps: fc.array(fc.constantFrom(" ", "  ", "\t", " \t "), { minLength: 1, maxLength: 3 }),
      trailing: fc.constantFrom("", " ", "\t"),
    })
    .map(({ letters, marker, emphasis, indent, gaps, trailing }) => {
      const cased = letters === "upper" ? line.toUpperCase() : letters === "lower" ? line.toLowerCase() : line;
      let i = 0;
      const spaced = cased.replace(/ /g, () => gaps[i++ % gaps.length]);
      return `${indent}${marker}${emphasis}${spaced}${emphasis}${trailing}`;
    });
const heldVariant = mustHold.chain(variant);
const unheldNote = fc.array(mustNotHold.chain(variant), { maxLength: 8 }).chain((lines) =>
  fc.array(fc.constantFrom("\n", "\n\n"), { minLength: lines.length, maxLength: lines.length }).map((breaks) =>
    lines.map((l, i) => `${l}${breaks[i]}`).join(""),
  ),
);

describe("release-note properties", () => {
  it("a note of changelog lines and 'nothing to do' lines never holds, however it is laid out", () => {
    fc.assert(
      fc.property(unheldNote, (note) => {
        assert.deepEqual(manualSteps(note), { lines: [], rows: [] });
      }),
      { numRuns: 300 },
    );
  });

  it("case, whitespace and markdown variations of a held line still hold, quoting that line", () => {
    fc.assert(
      fc.property(heldVariant, (line) => {
        assert.deepEqual(manualSteps(`Intro.\n\n${line}\n`).lines, [line.trim()]);
      }),
      { numRuns: 400 },
    );
  });

  it("appending a held line to any unheld note holds it, and only it", () => {
    fc.assert(
      fc.property(unheldNote, heldVariant, (note, line) => {
        assert.deepEqual(manualSteps(`${note}\n${line}`).lines, [line.trim()]);
      }),
      { numRuns: 300 },
    );
  });

  it("which lines hold does not depend on their order or on the lines around them", () => {
    const mixed = fc
      .tuple(fc.uniqueArray(mustHold, { maxLength: 5 }), fc.uniqueArray(mustNotHold, { maxLength: 5 }))
      .chain(([held, unheld]) => fc.shuffledSubarray([...held, ...unheld], { minLength: held.length + unheld.length }).map((order) => ({ held, order })));
    fc.assert(
      fc.property(mixed, ({ held, order }) => {
        const expected = order.filter((l) => held.includes(l));
        assert.deepEqual(manualSteps(order.join("\n")).lines, expected);
      }),
      { numRuns: 300 },
    );
  });

  it("a 'not needed' sentence before a held one on the same line does not let it through", () => {
    const midLine = fc.constantFrom(...MUST_HOLD.filter((l) => !LINE_START_ONLY.has(l)));
    const notNeeded = fc.constantFrom(...NOT_NEEDED).map((l) => l.replace(/[.]$/, ""));
    fc.assert(
      fc.property(notNeeded, midLine, (negation, line) => {
        const joined = `${negation}. ${line}`;
        assert.deepEqual(manualSteps(joined).lines, [joined]);
      }),
      { numRuns: 300 },
    );
  });

  it("a code span that is no command adds no hold to an unheld line", () => {
    const span = fc.constantFrom("APP_ENV", "v1.2.3", "compose.yml", "entrypoint.sh", "abra.sh", "/health", "docker", "true", "SECRET_KEY_VERSION=v2", "postgres:16", "docs/upgrade.md");
    fc.assert(
      fc.property(mustNotHold, span, (line, code) => {
        assert.deepEqual(manualSteps(`${line} (see \`${code}\`)`).lines, []);
      }),
      { numRuns: 200 },
    );
  });

  it("decide holds at exactly the notes with a held line, quoting exactly those lines", () => {
    const noteArb = fc.tuple(fc.uniqueArray(mustHold, { maxLength: 2 }), fc.uniqueArray(mustNotHold, { maxLength: 3 }));
    fc.assert(
      fc.property(fc.array(noteArb, { minLength: 1, maxLength: 4 }), (perVersion) => {
        const released = ["1.0.0+1.0", ...perVersion.map((_, i) => `1.${i + 1}.0+1.0`)];
        const notes: Record<string, string> = {};
        const envSamples: Record<string, string> = {};
        perVersion.forEach(([held, unheld], i) => {
          notes[released[i + 1]] = [...unheld, ...held].join("\n");
          envSamples[released[i + 1]] = "TYPE=app\n";
        });
        const d = decide({ app: "app", current: "1.0.0+1.0", released, notes, envSamples, currentEnvKeys: ["TYPE"] });
        const firstHeld = perVersion.findIndex(([held]) => held.length > 0);
        if (firstHeld === -1) {
          assert.deepEqual([d.target, d.holds], [released.at(-1), []]);
        } else {
          assert.equal(d.target, released[firstHeld]);
          assert.deepEqual(
            d.holds.map((h) => [h.reason, h.blockedAt, h.lines]),
            [["manual-steps", released[firstHeld + 1], perVersion[firstHeld][0]]],
          );
          assert.match(d.holds[0].detail, /\(matched: [^)]+\)$/);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("on any text: never throws, quotes only its own lines, and names rows exactly when it holds", () => {
    const fragment = fc.constantFrom(
      "no", "not", "run", "`", "abra", "app", "cmd", "deploy", "before", "upgrading", ",", ".", ":", "\n", "\n\n", "    ", "```",
      "- ", "**", "_", "manual", "steps", "need", "you", "secret", "volume", "back", "up", "none", "but", "./x.sh", "WARNING:", "\t", "'", "’",
    );
    const text = fc.oneof(fc.string({ maxLength: 120 }), fc.array(fc.oneof(fragment, fc.string({ maxLength: 4 })), { maxLength: 40 }).map((parts) => parts.join(" ")));
    fc.assert(
      fc.property(text, (notes) => {
        const { lines, rows } = manualSteps(notes);
        const own = notes.split(/\r\n|\r|\n/).map((l) => l.trim());
        for (const l of lines) assert.ok(own.includes(l) && l !== "", JSON.stringify(l));
        assert.equal(new Set(lines).size, lines.length);
        assert.deepEqual(rows, LABELS.filter((l) => rows.includes(l)));
        assert.equal(rows.length > 0, lines.length > 0);
      }),
      { numRuns: 500 },
    );
  });
});

// ---- the fixture recipes' own release notes ----

const FIXTURES = path.join(ROOT, "test", "fixtures", "recipes");

// Every fixture note, classified by hand: the rows it matches (none: not held). The 1.5.x versions are
// broken on purpose for the rollback tests and must reach the deploy; 1.3.0 is the manual-notes version.
const FIXTURE_NOTES: Record<string, Record<string, string[]>> = {
  "custom-html": {
    "1.0.0+1.0": [],
    "1.0.1+1.0": [],
    "1.1.0+1.1": [],
    "1.2.0+1.2": [],
    "1.3.0+1.2": ["manual migration", "before/after deploying", "command in backticks or a code block", "run a migrate command", "abra app cmd", "action required"],
    "1.4.0+2.0": [],
    "1.5.0+1.2": [],
    "1.5.1+1.2": [],
    "1.5.2+1.2": [],
    "2.0.0+1.2": ["breaking change"],
  },
  keycloak: {
    "1.0.0+26.5.6": [],
    "1.0.1+26.5.6": [],
    "1.1.0+26.7.3": [],
    "1.2.0+26.7.3": [],
    "1.3.0+26.7.3": ["manual steps", "before/after deploying", "action required"],
    "1.4.0+27.0.0": [],
    "1.5.0+26.7.3": [],
    "1.5.1+26.7.3": [],
    "1.5.2+26.7.3": [],
    // Broken OIDC behind a healthy /realms/master: no note gives it away, only the canary stops it.
    "1.6.0+26.7.3": [],
    "2.0.0+26.7.3": ["breaking change"],
  },
  "sso-app": {
    "1.0.0+1.0": [],
    "1.1.0+1.1": [],
    "1.1.1+1.1": [],
  },
  traefik: {
    "1.0.0+3.6.12": [],
    "1.0.1+3.6.12": [],
    "1.1.0+3.6.12": [],
    "1.2.0+3.6.12": [],
    "1.3.0+3.6.12": ["manual intervention", "requires manual", "instruction on the operator's things"],
    "1.4.0+4.0.0": [],
    "1.5.0+3.6.12": [],
    "1.5.1+3.6.12": [],
    "1.5.2+3.6.12": [],
    "2.0.0+3.6.12": ["breaking change"],
  },
};

function fixtureVersions(recipe: string): string[] {
  return readFileSync(path.join(FIXTURES, recipe, "versions"), "utf8")
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((v) => v !== "" && !v.startsWith("#") && v !== "defaults");
}

describe("the fixture recipes' release notes", () => {
  it("every fixture recipe, version and note is classified here", () => {
    const recipes = readdirSync(FIXTURES).sort();
    assert.deepEqual(recipes, Object.keys(FIXTURE_NOTES).sort());
    for (const recipe of recipes) {
      const files = readdirSync(path.join(FIXTURES, recipe, "release")).sort();
      assert.deepEqual(files, Object.keys(FIXTURE_NOTES[recipe]).sort(), recipe);
      assert.deepEqual(fixtureVersions(recipe).sort(), files, `${recipe}: every version has notes`);
    }
  });

  for (const [recipe, byVersion] of Object.entries(FIXTURE_NOTES)) {
    for (const [version, rows] of Object.entries(byVersion)) {
      it(`${recipe} ${version}: ${rows.length > 0 ? "held" : "not held"}`, () => {
        const text = readFileSync(path.join(FIXTURES, recipe, "release", version), "utf8");
        const steps = manualSteps(text);
        assert.deepEqual(steps.rows, rows);
        // The hold quotes the line that asks, never the headline above it.
        if (rows.length > 0) assert.deepEqual(steps.lines, [text.trim().split("\n").at(-1)]);
      });
    }
  }

  it("holds every 1.3.0 and no broken 1.5.x", () => {
    for (const [recipe, byVersion] of Object.entries(FIXTURE_NOTES)) {
      for (const [version, rows] of Object.entries(byVersion)) {
        if (version.startsWith("1.3.0+")) assert.ok(rows.length > 0, `${recipe} ${version}`);
        if (version.startsWith("1.5.")) assert.deepEqual(rows, [], `${recipe} ${version}`);
      }
    }
  });
});
