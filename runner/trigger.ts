// A PR comment starts a run on shared machines, so the trigger is an exact phrase, not a search: a
// comment that merely mentions `!testme` (quoted, in code, in a sentence) must never start one, and
// a refusal must tell the PR author what to type instead.

/** The only comments that start a run, by the mode each one asks for. */
export const TRIGGER_FORMS = { cold: "!testme", quick: "!testme --quick" } as const;

export type TriggerMode = keyof typeof TRIGGER_FORMS;

export type TriggerDecision = { accepted: true; mode: TriggerMode } | { accepted: false; reason: string };

const COMMAND = TRIGGER_FORMS.cold;
const QUICK_OPTION = "--quick";
const EXACTLY = `the comment must be exactly \`${TRIGGER_FORMS.cold}\` or \`${TRIGGER_FORMS.quick}\``;
const ONLY = `only \`${TRIGGER_FORMS.cold}\` or \`${TRIGGER_FORMS.quick}\``;
const ONE_SPACE = `one space between \`${COMMAND}\` and \`${QUICK_OPTION}\``;

// Only the ASCII whitespace an editor or a textarea adds around a comment is ignored. `trim()` would
// also drop NBSP, U+2028, the BOM and other Unicode spaces, and a comment whose visible text differs
// from its bytes should be refused, not guessed at. \f and \v are left out for the same reason: no
// editor produces them, so they are a sign of something other than a typed comment.
const SURROUNDING_WS = /^[ \t\n\r]+|[ \t\n\r]+$/g;
const ASCII_WS_RUN = /[ \t\n\r]+/;

// Dashes that word processors and phones substitute for `--`.
const LOOKALIKE_DASHES = /[\u2010-\u2015\u2212\u2E3A\u2E3B\uFE58\uFE63\uFF0D]/;
const UNICODE_SPACES = /[\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/;
// Printable ASCII plus the ASCII whitespace handled by the spacing rules.
const NOT_PLAIN = /[^\x20-\x7E\t\n\r]/u;
// Only a short, harmless option is echoed back, so a reply can never carry a mention or markup.
const ECHOABLE_OPTION = /^-{1,3}[A-Za-z0-9][A-Za-z0-9-]{0,30}$/;

export function parseTrigger(comment: string): TriggerDecision {
  const text = comment.replace(SURROUNDING_WS, "");
  if (text === TRIGGER_FORMS.cold) return { accepted: true, mode: "cold" };
  if (text === TRIGGER_FORMS.quick) return { accepted: true, mode: "quick" };
  return { accepted: false, reason: refusal(text) };
}

function codePoint(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

function refusal(text: string): string {
  if (text === "") return `empty comment: ${ONLY}`;

  const odd = NOT_PLAIN.exec(text);
  if (odd !== null) {
    const ch = odd[0];
    if (LOOKALIKE_DASHES.test(ch)) {
      return `\`${ch}\` (${codePoint(ch)}) is not a hyphen: type \`${QUICK_OPTION}\` with two ASCII hyphens`;
    }
    if (UNICODE_SPACES.test(ch)) {
      return `the comment contains a non-ASCII space (${codePoint(ch)}): use one plain space, ${ONLY}`;
    }
    return `the comment contains an invisible or non-ASCII character (${codePoint(ch)}): ${ONLY}, typed plainly`;
  }

  const words = text.split(ASCII_WS_RUN);
  const [first, option] = words;

  if (first !== COMMAND) {
    if (first.toLowerCase() === COMMAND) return `the command is case-sensitive: \`${COMMAND}\``;
    if (first === `${COMMAND}${QUICK_OPTION}`) return ONE_SPACE;
    if (first === "!" && words[1] === "testme") return `no space between \`!\` and \`testme\`: \`${COMMAND}\``;
    if (/[`'"]/.test(text) && text.includes(COMMAND)) {
      return `write the command plainly, without quotes or backticks: ${ONLY}`;
    }
    if (text.toLowerCase().includes(COMMAND)) return `${EXACTLY}; it contains other text`;
    return EXACTLY;
  }

  if (words.length === 2 && option === QUICK_OPTION) return ONE_SPACE;
  if (option === QUICK_OPTION) {
    return words.slice(2).includes(QUICK_OPTION) ? `\`${QUICK_OPTION}\` may appear only once` : `${EXACTLY}; it contains other text`;
  }
  if (option.toLowerCase() === QUICK_OPTION) return `the option is case-sensitive: \`${QUICK_OPTION}\``;
  if (option.toLowerCase() === "quick") return `the option takes two hyphens: \`${QUICK_OPTION}\``;
  if (option.startsWith("-")) {
    return ECHOABLE_OPTION.test(option) ? `unknown option ${option}: ${ONLY}` : `unknown option: ${ONLY}`;
  }
  return `${EXACTLY}; it contains other text`;
}
