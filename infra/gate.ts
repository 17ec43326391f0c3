// The upgrade safety gate (docs/design.md, invariant 4): given what runs now and what the recipe has
// released, pick the newest version that can be applied without a human, and say precisely what holds
// the rest back. Pure: the live version, tags, release notes and samples are read by the caller, so
// the decision is the same in `pulumi preview`, in `up` and in tests.
import type { AlertRecord } from "./adapters/alerts";
import { EnvFile, EnvParseError } from "./adapters/app-env";
import { RecipeVersion, VersionError, bumpKind, compareVersions, parseVersion, upstreamMajorChanged } from "./versions";

export type HoldReason = "recipe-major" | "upstream-major" | "manual-steps" | "new-required-key" | "failed-before" | "canary-failed";

export interface Hold {
  app: string;
  /**
   * The version the app is held at: what it runs once this up has applied the safe part (the gate's
   * target), which may be newer than what runs now.
   */
  from: string;
  /** The newest released version: what the app would run if nothing held it back. */
  to: string;
  /**
   * The first version that cannot be applied without a human; the target stays below it. For
   * "failed-before" and "canary-failed" the version that is not tried again; a newer safe release is
   * still taken.
   */
  blockedAt: string;
  reason: HoldReason;
  detail: string;
  /** The evidence: the release-note lines, the missing keys, or the two versions compared. */
  lines: string[];
}

export interface GateInput {
  app: string;
  /** Version running now, read from the live system; null = not deployed. */
  current: string | null;
  /** Used only when current is null. */
  initialVersion?: string;
  /** Tag names as listed (may include malformed ones). */
  released: readonly string[];
  /** Release notes per version (undefined = none). */
  notes: Readonly<Record<string, string | undefined>>;
  /** `.env.sample` text per version (undefined = none). */
  envSamples: Readonly<Record<string, string | undefined>>;
  /** Keys assigned in the app's env file now. */
  currentEnvKeys: readonly string[];
  /**
   * Versions whose upgrade failed and was rolled back, with why: not taken again (every night would
   * otherwise bring the same rollback), unless the operator asks for a retry.
   */
  failedBefore?: Readonly<Record<string, string>>;
  /** Versions whose canary failed (the shared Keycloak's), with why: not tried again either, unless retried. */
  canaryFailed?: Readonly<Record<string, string>>;
}

export interface GateDecision {
  app: string;
  current: string | null;
  target: string;
  action: "deploy" | "upgrade" | "stay";
  holds: Hold[];
  warnings: string[];
}

/** The gate cannot decide at all (bad input); `field` names the input at fault. */
export class GateError extends Error {
  constructor(
    readonly app: string,
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "GateError";
  }
}

// Release notes that mean "a human must do something around this upgrade": a manual step named as
// such, or a note shaped like an instruction to the operator (an imperative on the app's secrets,
// volumes, config or data, a command to run, a step before or after deploying). A false hold costs an
// alert; a missed one can cost data: the table leans towards matching, and only a note that says the
// step is not needed ("No manual steps needed", "you don't need to run …") is let through.
//
// Notes are matched line by line after the markdown is taken off (list markers, headings, quotes,
// emphasis), over the whole text so that a phrase hard-wrapped onto the next line is still found. A
// line inside a fenced block, or indented as code after a blank line, is a code line: a command on it
// holds like a command in backticks. What is deliberately not matched:
// - "Broken"/"breaks" alone: the fixtures' deliberately broken versions say "Broken on purpose", which
//   is for the rollback tests, not for the gate.
// - Changelog lines, which describe what the maintainers did ("Bumped …", "Migrated CI to Drone",
//   "Update README"): an imperative verb holds only with an object that is the operator's (a secret, a
//   volume, the config or env, the database, data, "your …"), and "run" only with something to run.
// - `abra app deploy` and `abra app upgrade`: that is the upgrade itself, which the gate decides on.
// - "… which must be set" about a new env key: whether the app's env sets it is exactly what the
//   new-required-key check decides, and it knows the answer.
//
// Negation: a match is set aside when its own clause (the text between punctuation, a dash, or "but",
// "unless", "so", … on the same line) says the step is not needed: "no" just before the phrase ("No
// manual steps needed", "No breaking changes"), "no need", "not/never/no longer … need/require/have
// to", "nothing to do", "without manual …", "removes the need", or after the phrase "… is not
// required" and "Manual steps: none". Plain "don't", "do not", "never" do not negate: "Don't forget to
// run …", "Do not deploy before backing up" are instructions. A negation never reaches past its clause
// or its line: "No manual steps needed, but run `…` after deploying" holds on the `…`.

/** One row of the table: a kind of note that calls for a human, with the line that shows it. */
export interface ManualStepRow {
  /** Names the row in a hold's detail and in the documentation. */
  label: string;
  /** Case-insensitive, never global; run over the cleaned text of the notes. */
  pattern: RegExp;
  /** A note line this row holds (tested, and shown in docs/operating.md). */
  example: string;
  why: string;
  /** A match does not hold when its clause matches this (a changelog line telling of a past bug). */
  unless?: RegExp;
}

// Marks a code line in the cleaned text: invisible to the prose rows, which allow it at a line start.
const CODE_LINE = "\u2063";
// Where an imperative can begin: a line start, or after punctuation, a dash or an opening parenthesis,
// optionally behind "and", "then", "please", "first", …
const START = String.raw`(?:(?<=^${CODE_LINE}?)|(?<=[.!?;:,][ \t]{1,4})|(?<=[ \t][-–—][ \t]{1,4})|(?<=\([ \t]{0,4})|(?<=\b(?:and|then)[ \t]{1,4}))(?:(?:please|also|now|first|then|finally|next|just|simply|and|so)[ \t]+){0,3}`;
// A word of a clause, for "a verb, then its object within three words" (never across punctuation).
const WORD = String.raw`\.?[\w'’\x60/<>-]+(?:[.=:][\w'’\x60/<>-]+)*`;
const WITHIN_3 = String.raw`[ \t]+(?:${WORD}[ \t]+){0,3}?`;
// Things that are the operator's to look after: an instruction about them is a manual step.
const OPERATOR_OBJECT = String.raw`(?:your\b|secrets?\b|volumes?\b|config(?:s|uration|urations)?\b|\.env\b|env(?:ironment)?(?:[ \t]+(?:files?|var(?:iable)?s?))?\b|variables?\b|databases?\b|db\b|data\b|backups?\b|migrations?\b|scripts?\b|passwords?\b|tokens?\b|certificates?\b|certs?\b|keys\b|(?:secret|api|private|signing|encryption|access)[ \t]+keys?\b|permissions\b|ownership\b|dumps?\b|directory\b|directories\b)`;
// Verbs that are a manual step whatever follows them.
const STEP_VERB = String.raw`(?:back[ \t-]up|undeploy|re-?deploy|re-?index|re-?generate|rotate|re-?insert)`;
// Verbs that are a manual step when their object is the operator's.
const OBJECT_VERB = String.raw`(?:migrate|delete|remove|move|rename|set|add|update|change|edit|insert|generate|create|re-?create|copy|restore|reset|re-?import|import|export|drop|purge|wipe|apply|configure|replace|dump|convert|clear|adjust|modify|enable|disable|switch|uncomment|comment[ \t]+out|prune|upgrade|take|make|backup|fix|check|verify|review|stop)`;
// Commands no prose sentence starts with. `abra app deploy`/`upgrade` are the upgrade itself; a path
// is a command when it is relative (`./x`), a script (`scripts/migrate.sh`) or a program (`bin/console`),
// not a URL path (`/health`). Repetitions are bounded, so a long token cannot make a match slow.
const COMMAND = String.raw`(?:abra[ \t]+(?!app[ \t]+(?:deploy|upgrade)\b)[a-z]|docker(?:-compose)?[ \t]+(?:exec|run|volume|service|stack|container|cp|secret|config|compose|system|rm|kill|stop|swarm)\b|kubectl[ \t]+[a-z]|(?:pg_dump|pg_dumpall|pg_restore|pg_upgrade|mysqldump|mariadb-dump|mongodump|mongorestore)\b|(?:php[ \t]+)?artisan[ \t]+[\w:-]|occ[ \t]+[\w:-]|(?:bundle[ \t]+exec[ \t]+)?(?:rails|rake)[ \t]+db:|(?:python3?[ \t]+)?manage\.py[ \t]+\w|(?:\.{1,2}|~)\/[\w.-]|\/?(?:[\w.-]{1,100}\/){1,10}(?:[\w.-]{1,100}\.sh\b|(?<=\bs?bin\/)[\w.-]))`;
// Programs that are a command only in code (a backtick span or a code line) and with an argument:
// in prose "MySQL 8" or "Bash completion" is no instruction.
const CODE_COMMAND = String.raw`(?:${COMMAND}|(?:psql|mysql|mariadb|mongosh|mongo|redis-cli|sqlite3|bash|sh|cp|mv|rm|chown|chmod|mkdir|rsync|tar|curl|wget|git|npm|npx|yarn|pnpm|php|python3?|node|systemctl|kc\.sh|docker(?:-compose)?|su|openssl)[ \t]+[^ \t\x60])`;
const PROMPT = String.raw`(?:[$#][ \t]+)?(?:sudo[ \t]+)?`;
// A changelog line telling of a past bug ("Fixed a crash after upgrading") is not a step.
const CHANGELOG_CLAUSE = /^\W*(?:fixed|fixes|resolved|resolves|prevented|prevents|avoided|avoids|corrected|corrects|addressed|addresses|handled|handles)\b/i;

const row = (label: string, source: string, example: string, why: string, unless?: RegExp): ManualStepRow => ({
  label,
  pattern: new RegExp(source, "im"),
  example,
  why,
  ...(unless ? { unless } : {}),
});

export const MANUAL_STEP_PATTERNS: readonly ManualStepRow[] = [
  row("manual migration", String.raw`\bmanual\s+migrations?\b`, "Manual migration required: run it by hand.", "data must be moved by hand"),
  row("manual steps", String.raw`\bmanual\s+steps?\b`, "Manual steps required: re-import the themes.", "the generic Co-op Cloud wording"),
  row("manual intervention", String.raw`\bmanual\s+intervention\b`, "This release requires manual intervention.", "same, other wording"),
  row("manually", String.raw`\b(?:manually|by\s+hand)\b`, "Move your config manually.", "any hand-done action"),
  row("requires manual", String.raw`\brequires?\s+(?:a\s+)?manual\b`, "Requires a manual restart of the workers.", `"manual" and a noun not listed above`),
  row("breaking change", String.raw`\bbreaking\s+changes?\b`, "Breaking change.", "the maintainer's own warning"),
  row("needs a human", String.raw`\bneeds?\s+(?:a\s+)?human\b`, "This needs a human.", "the maintainer says so in as many words"),
  row("data migration", String.raw`\bdata\s+migrations?\b`, "Includes a data migration.", "data changes shape"),
  row(
    "before/after deploying",
    // "once" only right before its verb: "run it once" ends many a sentence.
    String.raw`\b(?:before|after|prior\s+to)\s+(?:you(?:['’]ve|\s+have)?\s+)?(?:(?:re-?)?deploy(?:ing|ed|ment)?|upgrad(?:e|ing|ed)|updat(?:e|ing|ed)|the\s+(?:upgrade|update|(?:re-?)?deploy(?:ment)?)|this\s+(?:upgrade|update|release|version))\b|\bonce[ \t]+(?:you(?:['’]ve|[ \t]+have)?[ \t]+)?(?:(?:re-?)?deploy(?:ed)?|upgraded?|updated?)\b`,
    "Before deploying, back up the database.",
    "a step goes with the deploy; one due before it cannot be made up afterwards",
    CHANGELOG_CLAUSE,
  ),
  row(
    "command in backticks or a code block",
    String.raw`\x60[ \t]*${PROMPT}${CODE_COMMAND}[^\x60\n]{0,200}\x60|^${CODE_LINE}[ \t]*${PROMPT}${CODE_COMMAND}`,
    "`abra app secret generate example.com db_password v2`",
    "a command shown in a note is there to be run",
  ),
  row(
    "command at a line start",
    String.raw`${START}${PROMPT}${COMMAND}`,
    "abra app volume rm example.com",
    "a bare command is a step even without backticks",
  ),
  // Bounded and single-line, so a long note without a closing backtick cannot make the match slow.
  row("run a migrate command", String.raw`\brun\s+\x60[^\x60\n]{0,200}\bmigrat[^\x60\n]{0,200}\x60`, "run `flask db upgrade && flask migrate`", "a migration command to run"),
  row("abra app cmd", String.raw`\babra\s+app\s+cmd\b`, "Use abra app cmd to reindex.", "recipe commands are run by hand"),
  row(
    "run something",
    String.raw`${START}(?:run|re-?run|execute|exec)${WITHIN_3}(?:migrations?\b|migrate\b|scripts?\b|commands?\b|following\b|below\b|re-?index\b|backups?\b|this\b|these\b|(?:abra|occ|artisan|rails|rake|psql|pg_dump|mysqldump)\b|[\w.-]+\.sh\b)`,
    "Execute the upgrade script.",
    "an instruction to run something, with or without backticks",
  ),
  row("step verb", String.raw`${START}${STEP_VERB}\b`, "Regenerate the secrets.", "backing up, redeploying or regenerating is always the operator's"),
  row(
    "instruction on the operator's things",
    String.raw`${START}${OBJECT_VERB}${WITHIN_3}${OPERATOR_OBJECT}`,
    "Rename the secret `smtp_pass` to `smtp_password`.",
    "an imperative on a secret, volume, config, env, database or data (\"Update README\" is not one)",
  ),
  row(
    "please do",
    String.raw`\bplease[ \t]+(?:${STEP_VERB}|${OBJECT_VERB}|run|re-?run|execute|follow|do|ensure|remember|back)\b`,
    "Please run the following once:",
    `a polite imperative is still one ("Please note" is not)`,
  ),
  row(
    "you need to",
    String.raw`\b(?:you(?:['’]ll)?|operators?|admins?|administrators?)[ \t]+(?:(?:will|may|might|also|now|first|then|still|probably|definitely)[ \t]+){0,3}(?:need|must|have[ \t]+to|are[ \t]+required[ \t]+to|should[ \t]+(?:(?:now|first|also)[ \t]+)?(?:${STEP_VERB}|${OBJECT_VERB}|run|execute))\b|\bit[ \t]+is[ \t]+(?:(?:now|therefore|highly|strongly)[ \t]+)?(?:necessary|required|mandatory|important|essential|recommended|advised|advisable)[ \t]+to\b|\brequires?[ \t]+you[ \t]+to\b|\brecommend(?:ed)?[ \t]+(?:to|that|you|taking|making|backing|running|doing|upgrading|creating)\b`,
    "You need to re-insert the SMTP password.",
    "an obligation addressed to the operator",
  ),
  row(
    "make sure",
    String.raw`\b(?:make[ \t]+sure|be[ \t]+sure[ \t]+to|remember[ \t]+to|(?:do[ \t]+not|don['’]?t)[ \t]+forget|ensure[ \t]+(?:that[ \t]+)?(?:you|your))\b`,
    "Make sure to back up your volumes.",
    "a reminder is an instruction",
  ),
  row(
    "must be done",
    String.raw`\b(?:must|needs?[ \t]+to|has[ \t]+to|have[ \t]+to|should)[ \t]+(?:(?:now|first|then|also)[ \t]+)?be[ \t]+(?:re-?generated|rotated|re-?inserted|re-?created|re-?imported|re-?indexed|re-?deployed|re-?run|reset|migrated|moved|renamed|removed|deleted|backed[ \t]+up|updated|changed|generated|inserted|run|executed|applied|converted|dumped|restored|imported|exported|copied|edited|adjusted|replaced|purged|wiped|dropped|cleared)\b`,
    "The `db_password` secret must be regenerated.",
    `an instruction in the passive ("which must be set" about a new key is the new-required-key check's)`,
  ),
  row(
    "requires a migration or backup",
    String.raw`\b(?:requires?|required|needs?|needed)[ \t]+(?:(?:a|an|some)[ \t]+)?(?:(?:full|database|db|data|fresh|schema|one-time|one-off)[ \t]+)?(?:migration|backup|dump|restore|re-?index|re-?import|intervention|action)s?\b`,
    "This release requires a database migration.",
    "the step is named as a requirement",
  ),
  row(
    "action required",
    String.raw`\b(?:actions?|steps?|intervention|migrations?|backups?|dumps?|restores?|re-?index(?:ing)?|re-?imports?)[ \t]+(?:is[ \t]+|are[ \t]+)?(?:required|needed|necessary)\b|\brequired[ \t]+(?:action|steps?)\b`,
    "Action required before the next deploy.",
    "the usual headline of an upgrade step",
  ),
  row("upgrade guide", String.raw`\b(?:upgrade|upgrading|migration)\s+(?:guide|instructions|notes|procedure|steps)\b`, "Follow the upgrade guide in the README.", "the steps are written elsewhere"),
  row("upgrade script", String.raw`\b(?:upgrade|upgrading|migration|migrate)[ \t-]+scripts?\b`, "A migration script is included.", "a script is there to be run"),
  row("back up", String.raw`\bback(?:ing)?[ \t-]+up\b`, "Do not deploy without backing up first.", "a backup is always the operator's step"),
  row(
    "if you use",
    String.raw`\b(?:if|unless|in[ \t]+case)[ \t]+you(?:['’]re)?[ \t]+(?:(?:are|were|have|had|still)[ \t]+)?(?:use|used|using|rely|relied|relying|enabled|customi[sz]ed|configured|changed|modified|set|depend|depended|upgrade|upgrading|deployed)\b`,
    "If you use the S3 storage, switch to the new bucket layout.",
    "a step for some setups only; the gate cannot tell whether this app is one",
  ),
  row(
    "warning",
    String.raw`^${CODE_LINE}?(?:\u26A0\uFE0F?|(?:warning|important|caution|danger|attention|breaking|heads[ \t-]up)[ \t]*[:!])`,
    "WARNING: this release renames the data volume.",
    "a note that opens with a warning is rarely without a step",
  ),
  row(
    "irreversible",
    String.raw`\b(?:data[ \t]+loss|(?:lose|losing)[ \t]+(?:(?:your|all|any|the)[ \t]+)?data|irreversible|cannot[ \t]+be[ \t]+undone|(?:cannot|can['’]t|can[ \t]+not)[ \t]+(?:be[ \t]+)?(?:roll(?:ed)?[ \t]*back|downgrad(?:e|ed))|no[ \t]+(?:way[ \t]+)?(?:back|roll[ \t]*back|downgrade)\b|not[ \t]+backwards?[ \t-]compatible|backwards?[ \t-]incompatible)`,
    "This upgrade cannot be rolled back.",
    "a rollback would not save the data: it needs a backup first",
  ),
];

// Where a clause ends: a negation covers only its own clause.
const CLAUSE_BOUNDARY = /[.!?;:,](?=\s|$)|[ \t][-–—][ \t]|[()]|\b(?:but|however|except|unless|though|although|so|then|otherwise|instead|yet)\b/gi;
// "No manual steps", "no breaking changes": "no" at most two words before the phrase.
const NO_BEFORE = /\bno\s+(?:[\w'’-]+\s+){0,2}$/i;
// Said before the phrase (or running into it: "does not require a manual restart").
const NOT_NEEDED = [
  /(?:\bnot|n['’]t|\bnever|\bno\s+longer)\s+(?:[\w'’-]+\s+){0,2}?(?:need|needs|needed|require|requires|required|necessary|have\s+to|has\s+to)\b/i,
  /\bno\s+need\b/i,
  /\bnothing\s+(?:else\s+)?(?:to\s+(?:do|run|change|migrate)|(?:needs|has)\s+to|is\s+(?:required|needed|necessary)|required|needed)\b/i,
  /\bunnecessary\b/i,
  /\bwithout\s+(?:any\s+)?(?:need|manual|human|operator|action|intervention)\b/i,
  /\b(?:removes?|removed|eliminates?|eliminated|avoids?|avoided)\s+the\s+need\b/i,
];
// Said after the phrase, in the same clause: "… by hand is no longer needed".
const NOT_NEEDED_AFTER = /^.*?(?:(?:\bnot|n['’]t|\bno\s+longer)\s+(?:[\w'’-]+\s+)?(?:required|needed|necessary)\b|\bunnecessary\b)/i;
// "Manual steps: none."
const NONE_AFTER = /^[^.!?;,]*?:\s*(?:none|nothing|no|n\/a)\s*(?:[.!?;,]|$)/i;

// The clause around line[start, end): from the boundary before start to the boundary after end.
function clauseAround(line: string, start: number, end: number): { from: number; to: number } {
  let from = 0;
  let to = line.length;
  for (const b of line.matchAll(CLAUSE_BOUNDARY)) {
    if (b.index + b[0].length <= start) from = b.index + b[0].length;
    else if (b.index >= end) {
      to = b.index;
      break;
    }
  }
  return { from, to };
}

function negated(line: string, start: number, end: number, clause: { from: number; to: number }): boolean {
  const before = line.slice(clause.from, start);
  if (NO_BEFORE.test(before.slice(-80))) return true;
  const upToEnd = line.slice(clause.from, end);
  if (NOT_NEEDED.some((cue) => (cue.exec(upToEnd)?.index ?? Infinity) < before.length)) return true;
  return NOT_NEEDED_AFTER.test(line.slice(end, clause.to)) || NONE_AFTER.test(line.slice(end));
}

// Markdown off, whitespace collapsed; code spans are kept as they are (`APP_ENV` keeps its "_").
function cleanProse(line: string): string {
  return line
    .trim()
    .replace(/^(?:>[ \t]*)+/, "")
    .replace(/^#{1,6}[ \t]+/, "")
    .replace(/^(?:[-*+•]|\d{1,3}[.)])[ \t]+/, "")
    .replace(/^\[[ xX]\][ \t]+/, "")
    .replace(/(`[^`]*`)|\*\*|__|~~/g, (_, code: string | undefined) => code ?? "")
    .replace(/(`[^`]*`)|(^|[\s(])[*_]+(?=\S)|(?<=\S)[*_]+(?=[\s).,;:!?`]|$)/g, (_, code: string | undefined, before: string | undefined) => code ?? before ?? "")
    .replace(/[ \t]+/g, " ");
}

const FENCE = /^[ \t]*(?:```|~~~)/;

// Fenced lines, and lines indented by four spaces or a tab after a blank line or another code line.
function cleanLines(raw: readonly string[]): string[] {
  const cleaned: string[] = [];
  let fenced = false;
  let previousBlankOrCode = true;
  for (const line of raw) {
    if (FENCE.test(line)) {
      fenced = !fenced;
      cleaned.push("");
      previousBlankOrCode = true;
      continue;
    }
    const code: boolean = fenced || (previousBlankOrCode && /^(?: {4}|\t)/.test(line) && line.trim() !== "");
    cleaned.push(code ? `${CODE_LINE}${line.trim()}` : cleanProse(line));
    previousBlankOrCode = code || line.trim() === "";
  }
  return cleaned;
}

export interface ManualSteps {
  /** The trimmed note lines that call for manual steps, in order, each once. */
  lines: string[];
  /** The labels of the table rows that matched, in table order. */
  rows: string[];
}

export function manualSteps(notes: string): ManualSteps {
  const raw = notes.split(/\r\n|\r|\n/);
  const cleaned = cleanLines(raw);
  // Matching runs over the whole text so that a phrase wrapped onto the next line is still found;
  // every line a match touches is reported.
  const text = cleaned.join("\n");
  const starts: number[] = [];
  let offset = 0;
  for (const l of cleaned) {
    starts.push(offset);
    offset += l.length + 1;
  }
  const lineAt = (index: number): number => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const hit = new Set<number>();
  const rows: string[] = [];
  for (const { pattern, label, unless } of MANUAL_STEP_PATTERNS) {
    // A private global copy: the exported patterns stay stateless (no lastIndex surprises for callers).
    const global = new RegExp(pattern.source, `${pattern.flags}g`);
    let matched = false;
    for (const m of text.matchAll(global)) {
      const first = lineAt(m.index);
      const last = lineAt(m.index + Math.max(m[0].length - 1, 0));
      const line = cleaned[first];
      const start = m.index - starts[first];
      const end = first === last ? start + m[0].length : line.length;
      const clause = clauseAround(line, start, end);
      if (negated(line, start, end, clause)) continue;
      if (unless?.test(line.slice(clause.from, clause.to))) continue;
      matched = true;
      for (let i = first; i <= last; i++) hit.add(i);
    }
    if (matched) rows.push(label);
  }
  const lines = [...hit]
    .sort((a, b) => a - b)
    .filter((i) => cleaned[i].replace(CODE_LINE, "").trim() !== "")
    .map((i) => raw[i].trim());
  // A line repeated in the notes is the same evidence: quoted once.
  return { lines: [...new Set(lines)], rows };
}

/** The trimmed lines of `notes` that call for manual steps, in order, each once. */
export function manualStepLines(notes: string): string[] {
  return manualSteps(notes).lines;
}

/**
 * Keys the sample assigns an empty value (`KEY=`, `KEY=""`) that the app's env lacks: the recipe has
 * no default for them, so the new version would start without a setting it needs. A key with a value
 * has a default; a commented `#KEY=` is optional. Throws EnvParseError when the sample is not an env
 * file.
 */
export function newRequiredKeys(envSample: string, currentEnvKeys: readonly string[]): string[] {
  const sample = EnvFile.parse(envSample, ".env.sample");
  const have = new Set(currentEnvKeys);
  return sample.keys().filter((k) => sample.get(k) === "" && !have.has(k));
}

// Tags and versions can be long or contain control characters; messages must stay one short line.
function show(value: unknown): string {
  if (typeof value !== "string") return `a ${value === null ? "null" : typeof value}`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

function parseField(app: string, field: string, label: string, raw: string): RecipeVersion {
  try {
    return parseVersion(raw, label);
  } catch (err) {
    if (!(err instanceof VersionError)) throw err;
    // VersionError says `<label>: "x" is not a recipe version (...)`; here it reads `<app>: <label> "x" ...`.
    throw new GateError(app, field, `${app}: ${label} ${err.message.slice(label.length + 2)}`);
  }
}

// Ascending and without duplicates. A malformed tag is never ordered: guessing where it belongs
// could make it "newer" than every real release and deploy something that was never released.
function parseReleased(app: string, released: readonly string[], warnings: string[]): RecipeVersion[] {
  const seen = new Set<string>();
  const versions: RecipeVersion[] = [];
  for (const raw of released) {
    if (seen.has(raw)) continue;
    seen.add(raw);
    try {
      versions.push(parseVersion(raw, "tag"));
    } catch (err) {
      if (!(err instanceof VersionError)) throw err;
      warnings.push(`${app}: ignoring tag ${show(raw)}: not a recipe version X.Y.Z+UPSTREAM`);
    }
  }
  return versions.sort(compareVersions);
}

// Own properties only: a record is keyed by tag names, and an inherited `constructor` is not a note.
function lookup(record: Readonly<Record<string, string | undefined>>, key: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

type Risk = Pick<Hold, "reason" | "detail" | "lines">;

// Each candidate is judged against the version running now, not against its predecessor: the
// upgrade is applied in one step from current to target, so that is the jump that must be safe.
function assess(input: GateInput, current: RecipeVersion, v: RecipeVersion, warnings: string[]): Risk | null {
  const { app } = input;
  if (bumpKind(current, v) === "recipe-major") {
    return {
      reason: "recipe-major",
      detail: `recipe major bump ${current.major}.x → ${v.major}.x needs a human`,
      lines: [current.raw, v.raw],
    };
  }
  if (upstreamMajorChanged(current, v)) {
    const known = current.upstreamMajor !== null && v.upstreamMajor !== null;
    return {
      reason: "upstream-major",
      detail: known
        ? `upstream major bump ${current.upstreamMajor} → ${v.upstreamMajor} (${current.upstream} → ${v.upstream}) needs a human`
        : `upstream ${current.upstream} → ${v.upstream} has no recognisable major version, so the change cannot be judged safe; needs a human`,
      lines: [current.raw, v.raw],
    };
  }
  const notes = lookup(input.notes, v.raw);
  if (notes === undefined) {
    warnings.push(`${app}: ${v.raw} has no release notes; nothing to check for manual steps`);
  } else {
    const steps = manualSteps(notes);
    if (steps.lines.length > 0) {
      return {
        reason: "manual-steps",
        detail: `the release notes of ${v.raw} call for manual steps (matched: ${steps.rows.join("; ")})`,
        lines: steps.lines,
      };
    }
  }
  const sample = lookup(input.envSamples, v.raw);
  if (sample === undefined) {
    warnings.push(`${app}: ${v.raw} has no .env.sample; nothing to check for new required keys`);
  } else {
    let keys: string[];
    try {
      keys = newRequiredKeys(sample, input.currentEnvKeys);
    } catch (err) {
      if (!(err instanceof EnvParseError)) throw err;
      // As good as no sample: we cannot tell, and the other checks still stand.
      warnings.push(`${app}: the .env.sample of ${v.raw} cannot be read (${err.message}); nothing to check for new required keys`);
      keys = [];
    }
    if (keys.length > 0) {
      const them = keys.length === 1 ? "it" : "them";
      return {
        reason: "new-required-key",
        detail: `${v.raw} requires ${keys.join(", ")} without a default, and the app's env does not set ${them}`,
        lines: keys,
      };
    }
  }
  return null;
}

export function decide(input: GateInput): GateDecision {
  const { app } = input;
  const warnings: string[] = [];
  const released = parseReleased(app, input.released, warnings);
  const newest = released.length > 0 ? released[released.length - 1] : null;

  // A malformed initialVersion is a config mistake even while unused: report it now, not on the day
  // the app is first deployed. Whether it is released only matters when it is used.
  const initial =
    input.initialVersion === undefined ? undefined : parseField(app, "initialVersion", "initialVersion", input.initialVersion);

  if (input.current === null) {
    if (newest === null) {
      throw new GateError(app, "released", `${app}: not deployed and nothing is released (no tag is a recipe version)`);
    }
    let target = newest;
    if (initial !== undefined) {
      const found = released.find((v) => v.raw === initial.raw);
      if (found === undefined) {
        throw new GateError(app, "initialVersion", `${app}: initialVersion ${show(initial.raw)} is not a released version`);
      }
      target = found;
    }
    // A fresh install has nothing to migrate and no env to fall short of: no holds.
    return { app, current: null, target: target.raw, action: "deploy", holds: [], warnings };
  }

  const current = parseField(app, "current", "current version", input.current);
  const stay = (): GateDecision => ({ app, current: current.raw, target: current.raw, action: "stay", holds: [], warnings });

  if (newest === null) {
    warnings.push(`${app}: nothing is released (no tag is a recipe version); staying at ${current.raw}`);
    return stay();
  }
  const isReleased = released.some((v) => v.raw === current.raw);
  if (compareVersions(current, newest) > 0) {
    warnings.push(
      `${app}: running ${current.raw}, newer than every released version (newest ${newest.raw}): tag deleted, or running a commit? Staying`,
    );
    return stay();
  }
  if (!isReleased) {
    warnings.push(`${app}: running ${current.raw}, which is not a released version (tag deleted?); judging upgrades from it anyway`);
  }

  let target = current;
  const holds: Hold[] = [];
  let newestFailed: { version: RecipeVersion; why: string; reason: "failed-before" | "canary-failed" } | null = null;
  for (const v of released) {
    if (compareVersions(v, current) <= 0) continue;
    const risk = assess(input, current, v, warnings);
    if (risk !== null) {
      // One hold, at the first risky version: everything above it is reached only through it.
      holds.push({ app, from: current.raw, to: newest.raw, blockedAt: v.raw, ...risk });
      break;
    }
    // A version that failed before is skipped, not a wall: a newer safe release (its fix) is taken.
    const failed = failureOf(input, v.raw);
    if (failed !== undefined) newestFailed = { version: v, ...failed };
    else target = v;
  }
  if (newestFailed !== null && compareVersions(newestFailed.version, target) > 0) {
    holds.unshift({
      app,
      from: current.raw,
      to: newest.raw,
      blockedAt: newestFailed.version.raw,
      reason: newestFailed.reason,
      detail: `${newestFailed.reason === "canary-failed" ? `the canary of ${newestFailed.version.raw} failed, so the live app never moved` : `the upgrade to ${newestFailed.version.raw} failed and was rolled back`}; it is not tried again until a newer safe release or a retry (warmstack up --retry ${app})`,
      lines: [newestFailed.why],
    });
  }
  return {
    app,
    current: current.raw,
    target: target.raw,
    action: target.raw === current.raw ? "stay" : "upgrade",
    // Held at what it will run: after 1.0.0 → 1.1.0, a risky 2.0.0 is held at 1.1.0.
    holds: holds.map((hold) => ({ ...hold, from: target.raw })),
    warnings,
  };
}

/** Why a version is not tried again, if it is not: its upgrade was rolled back, or its canary failed. */
function failureOf(input: GateInput, version: string): { why: string; reason: "failed-before" | "canary-failed" } | undefined {
  const rolledBack = input.failedBefore ? lookup(input.failedBefore, version) : undefined;
  if (rolledBack !== undefined) return { why: rolledBack, reason: "failed-before" };
  const canary = input.canaryFailed ? lookup(input.canaryFailed, version) : undefined;
  return canary === undefined ? undefined : { why: canary, reason: "canary-failed" };
}

/** The app's failed canaries from its alert records (newest first): target version → when and why. */
export function failedCanaries(alerts: readonly AlertRecord[], app: string): Record<string, string> {
  return alertsByTarget(alerts, app, (outcome) => outcome === "canary-failed");
}

/** The app's failed upgrades from its alert records (newest first): target version → when and why. */
export function failedUpgrades(alerts: readonly AlertRecord[], app: string): Record<string, string> {
  return alertsByTarget(alerts, app, (outcome) => outcome === "rolled-back" || outcome === "rollback-failed");
}

function alertsByTarget(alerts: readonly AlertRecord[], app: string, counts: (outcome: AlertRecord["outcome"]) => boolean): Record<string, string> {
  const failed: Record<string, string> = {};
  for (const alert of alerts) {
    if (alert.app !== app || alert.to === null || !counts(alert.outcome)) continue;
    if (!Object.prototype.hasOwnProperty.call(failed, alert.to)) failed[alert.to] = `${alert.time} ${alert.outcome}: ${alert.reason}`;
  }
  return failed;
}
