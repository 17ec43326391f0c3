import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  EnvFile,
  EnvParseError,
  EnvValueError,
  encodeValue,
  readEnvFile,
  writeEnvFile,
} from "../../infra/adapters/app-env";

const SAMPLE = [
  "# Co-op Cloud app",
  "TYPE=keycloak:10.7.1+26.6.2",
  "DOMAIN=keycloak.example.com",
  "",
  "## Optional",
  "#SMTP_HOST=mail.example.com",
  "# export SMTP_PORT=587",
  "export LETS_ENCRYPT_ENV=production",
  "COMPOSE_FILE=\"compose.yml:compose.smtp.yml\"  # which files",
  "TITLE='Hello $USER'",
  "#",
].join("\n");

// Values that an env file can hold: anything but line breaks and NUL.
const valueArb = fc.string({ maxLength: 30, unit: "grapheme" }).filter((s) => !/[\n\r\0]/.test(s));
const keyArb = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/);

describe("parsing", () => {
  const env = EnvFile.parse(`${SAMPLE}\n`);

  it("reads unquoted, exported, double- and single-quoted values", () => {
    assert.equal(env.get("TYPE"), "keycloak:10.7.1+26.6.2");
    assert.equal(env.get("LETS_ENCRYPT_ENV"), "production");
    assert.equal(env.get("COMPOSE_FILE"), "compose.yml:compose.smtp.yml");
    assert.equal(env.get("TITLE"), "Hello $USER");
    assert.equal(env.get("SMTP_HOST"), undefined);
    assert.equal(env.has("SMTP_HOST"), false);
    assert.deepEqual(env.keys(), ["TYPE", "DOMAIN", "LETS_ENCRYPT_ENV", "COMPOSE_FILE", "TITLE"]);
  });

  it("lists keys that appear only commented out", () => {
    assert.deepEqual(env.commentedKeys(), ["SMTP_HOST", "SMTP_PORT"]);
    const enabled = EnvFile.parse("#A=1\nA=2\n#B=\n");
    assert.deepEqual(enabled.commentedKeys(), ["B"]);
  });

  const values: [string, string][] = [
    ["A=", ""],
    ["A=  spaced out  ", "spaced out"],
    ["A=a#b", "a#b"],
    ["A=a #b", "a"],
    ["A=a\t# tab comment", "a"],
    ["A= # only a comment", ""],
    ["A=#not-a-comment", "#not-a-comment"],
    ['A="x\\"y\\\\z\\$w\\`v"', 'x"y\\z$w`v'],
    ['A="line\\nbreak"', "line\nbreak"],
    ['A="keep \\t backslash"', "keep \\t backslash"],
    ['A="a # b" # c', "a # b"],
    ['A=""', ""],
    ["A='a \\\" $b'", 'a \\" $b'],
    ["A='x'#c", "x"],
    ["A=x=y", "x=y"],
    ['A=a"b', 'a"b'],
    ["  A=indented", "indented"],
    ["export\tA=1", "1"],
    ["A=crlf\r", "crlf"],
    ['A="crlf"\r', "crlf"],
    ['A="q" # c\r', "q"],
  ];
  for (const [line, value] of values) {
    it(`reads ${JSON.stringify(line)}`, () => {
      const e = EnvFile.parse(`${line}\n`);
      assert.equal(e.get("A"), value);
      assert.equal(e.toString(), `${line}\n`);
    });
  }

  it("lets the last duplicate win, like the shell", () => {
    const e = EnvFile.parse("A=1\nB=2\nA=3\n");
    assert.equal(e.get("A"), "3");
    assert.deepEqual(e.toObject(), { A: "3", B: "2" });
  });

  it("keeps a key called __proto__ as an ordinary key", () => {
    const obj = EnvFile.parse("__proto__=x\n").toObject();
    assert.equal(Object.getPrototypeOf(obj), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(obj, "__proto__")?.value, "x");
  });

  const broken: [string, number, RegExp][] = [
    ["A=1\nno equals sign\n", 2, /expected KEY=value/],
    ["A=1\n\n1A=2\n", 3, /"1A" is not a valid key/],
    ["KEY =x\n", 1, /"KEY " is not a valid key/],
    ['A="unterminated\n', 1, /unterminated quote in the value of A/],
    ["A='unterminated\n", 1, /unterminated quote/],
    ['A="x" trailing\n', 1, /after the closing quote of A/],
    ["A-B=1\n", 1, /not a valid key/],
    ["=1\n", 1, /not a valid key/],
  ];
  for (const [text, line, problem] of broken) {
    it(`refuses ${JSON.stringify(text)} at line ${line}`, () => {
      assert.throws(() => EnvFile.parse(text, "app.env"), (err: unknown) => {
        assert.ok(err instanceof EnvParseError);
        assert.equal(err.source, "app.env");
        assert.equal(err.line, line);
        assert.ok(err.message.startsWith(`app.env:${line}: `), err.message);
        assert.match(err.message, problem);
        return true;
      });
    });
  }

  it("never puts a value into a parse error (it may be a secret)", () => {
    assert.throws(() => EnvFile.parse('PASSWORD="hunter2-secret'), (err: unknown) => {
      assert.ok(err instanceof EnvParseError);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  });
});

describe("round trip", () => {
  it("returns the text unchanged, adding only a missing final newline", () => {
    assert.equal(EnvFile.parse(`${SAMPLE}\n`).toString(), `${SAMPLE}\n`);
    assert.equal(EnvFile.parse(SAMPLE).toString(), `${SAMPLE}\n`);
    assert.equal(EnvFile.parse("A=1\n\n\n").toString(), "A=1\n\n\n");
    assert.equal(EnvFile.parse("A=1\r\nB=2\r\n").toString(), "A=1\r\nB=2\r\n");
    assert.equal(EnvFile.parse("").toString(), "");
  });

  it("holds for generated files", () => {
    const lineArb = fc.oneof(
      fc.constant(""),
      fc.string({ maxLength: 20 }).filter((s) => !s.includes("\n")).map((s) => `#${s}`),
      fc.tuple(keyArb, valueArb).map(([k, v]) => `${k}=${encodeValue(k, v)}`),
      fc.tuple(keyArb, fc.stringMatching(/^[a-z0-9 ]{0,8}$/)).map(([k, v]) => `export ${k}=${v} # note`),
    );
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 10 }), fc.boolean(), (lines, finalNewline) => {
        const text = lines.join("\n") + (finalNewline && lines.length > 0 ? "\n" : "");
        const out = EnvFile.parse(text).toString();
        assert.equal(out, text === "" || text.endsWith("\n") ? text : `${text}\n`);
      }),
    );
  });
});

describe("editing", () => {
  it("appends on a new line when the file has no final newline (the .env.sample trap)", () => {
    const e = EnvFile.parse("DOMAIN=x.example.org\n#SMTP_HOST=mail");
    e.set("TYPE", "keycloak:1.0.0+26.0.0");
    assert.equal(e.toString(), "DOMAIN=x.example.org\n#SMTP_HOST=mail\nTYPE=keycloak:1.0.0+26.0.0\n");
    assert.equal(EnvFile.parse(e.toString()).get("TYPE"), "keycloak:1.0.0+26.0.0");
    assert.deepEqual(EnvFile.parse(e.toString()).commentedKeys(), ["SMTP_HOST"]);

    const bare = EnvFile.parse("A=1");
    bare.set("B", "2");
    assert.equal(bare.toString(), "A=1\nB=2\n");
  });

  it("replaces in place, keeping indentation, export and the inline comment", () => {
    const e = EnvFile.parse("# head\nexport TYPE=app:1.0.0+1 # pinned\nDOMAIN=d.org\n");
    e.set("TYPE", "app:2.0.0+1");
    assert.equal(e.toString(), "# head\nexport TYPE=app:2.0.0+1 # pinned\nDOMAIN=d.org\n");
    const crlf = EnvFile.parse("A=1\r\nB=2\r\n");
    crlf.set("A", "3");
    assert.equal(crlf.toString(), "A=3\r\nB=2\r\n");
  });

  it("replaces at the last duplicate and removes the earlier ones", () => {
    const e = EnvFile.parse("A=1\nB=2\nA=3\nC=4\n");
    e.set("A", "5");
    assert.equal(e.toString(), "B=2\nA=5\nC=4\n");
    assert.equal(e.get("A"), "5");
  });

  it("deletes every assignment but keeps commented hints", () => {
    const e = EnvFile.parse("A=1\n#A=hint\nB=2\nA=3\n");
    assert.equal(e.delete("A"), true);
    assert.equal(e.delete("A"), false);
    assert.equal(e.toString(), "#A=hint\nB=2\n");
    assert.deepEqual(e.commentedKeys(), ["A"]);
  });

  it("quotes only when needed and escapes what the shell would expand", () => {
    assert.equal(encodeValue("K", "plain-1.2_3/x:y,z@w+%="), "plain-1.2_3/x:y,z@w+%=");
    assert.equal(encodeValue("K", ""), "");
    assert.equal(encodeValue("K", "a b"), '"a b"');
    assert.equal(encodeValue("K", 'x"$`\\'), '"x\\"\\$\\`\\\\"');
    assert.equal(encodeValue("K", "#x"), '"#x"');
  });

  it("refuses line breaks and NUL without echoing the value", () => {
    for (const bad of ["a\nb", "a\rb", "a\0b"]) {
      assert.throws(() => EnvFile.parse("").set("SECRET", `hunter2${bad}`), (err: unknown) => {
        assert.ok(err instanceof EnvValueError);
        assert.equal(err.key, "SECRET");
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      });
    }
  });

  it("refuses invalid keys", () => {
    for (const bad of ["", "1A", "A-B", "A B", "A=B", "export A"]) {
      assert.throws(() => EnvFile.parse("").set(bad, "x"), EnvValueError);
    }
  });

  it("set then parse gives back any value an env file can hold", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("", "A=1\n", "# c\nA=1", "X='y'\n#K=v"),
        keyArb,
        valueArb,
        (start, key, value) => {
          const e = EnvFile.parse(start);
          e.set(key, value);
          assert.equal(e.get(key), value);
          const again = EnvFile.parse(e.toString());
          assert.equal(again.get(key), value);
          assert.equal(again.toString(), e.toString());
          assert.equal(again.keys().filter((k) => k === key).length, 1);
        },
      ),
    );
  });

  it("set never disturbs the other keys", () => {
    fc.assert(
      fc.property(fc.dictionary(keyArb, valueArb, { maxKeys: 6 }), keyArb, valueArb, (initial, key, value) => {
        const e = EnvFile.parse("");
        for (const [k, v] of Object.entries(initial)) e.set(k, v);
        e.set(key, value);
        assert.deepEqual(EnvFile.parse(e.toString()).toObject(), { ...initial, [key]: value });
      }),
    );
  });
});

describe("files", () => {
  it("writes atomically with mode 0600 and reads back", async () => {
    const dir = await mkdtemp(join(tmpdir(), "app-env-"));
    try {
      const path = join(dir, "app.example.org.env");
      await writeFile(path, "OLD=1\n", { mode: 0o644 });
      const e = EnvFile.parse("TYPE=app:1.0.0+1\n#OPT=x");
      e.set("PASSWORD_HINT", "see pass store");
      // A umask that strips the owner's write bit: the file must still end up exactly 0600.
      const umask = process.umask(0o277);
      try {
        await writeEnvFile(path, e);
      } finally {
        process.umask(umask);
      }

      assert.equal(await readFile(path, "utf8"), e.toString());
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.deepEqual(await readdir(dir), ["app.example.org.env"]);
      const back = await readEnvFile(path);
      assert.equal(back.get("PASSWORD_HINT"), "see pass store");
      assert.deepEqual(back.commentedKeys(), ["OPT"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("leaves the old file and no temporary file behind when the write fails", async () => {
    const dir = await mkdtemp(join(tmpdir(), "app-env-"));
    try {
      // A directory in the target's place makes the final rename fail after the temp file is written.
      const path = join(dir, "app.env");
      await writeFile(join(dir, "keep"), "x");
      await mkdir(path);
      await writeFile(join(path, "inside"), "x");
      await assert.rejects(writeEnvFile(path, EnvFile.parse("A=1\n")));
      assert.deepEqual((await readdir(dir)).sort(), ["app.env", "keep"]);
      assert.deepEqual(await readdir(path), ["inside"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("names the file in parse errors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "app-env-"));
    try {
      const path = join(dir, "bad.env");
      await writeFile(path, "A=1\nbroken\n");
      await assert.rejects(readEnvFile(path), (err: unknown) => {
        assert.ok(err instanceof EnvParseError);
        assert.equal(err.message.startsWith(`${path}:2: `), true);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
