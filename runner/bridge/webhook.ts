import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { parseTrigger, TRIGGER_FORMS, TriggerMode } from "../trigger";

/**
 * What the bridge makes of a forge's webhook delivery, decided without any I/O: is it signed with
 * our secret, is it a comment on a pull request, and does the comment ask for a run. Gitea and
 * Forgejo sign with `X-Gitea-Signature` (hex HMAC-SHA256 of the raw body) or, GitHub-style,
 * `X-Hub-Signature-256: sha256=<hex>`; the comparison takes the same time whatever the bytes.
 */
export type Refusal = { status: 400 | 401 | 409 | 413; reason: string };

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/** The signature the delivery carries, in either header's form; undefined when it carries none. */
function claimedSignature(headers: Record<string, string | undefined>): string | undefined {
  const gitea = headers["x-gitea-signature"] ?? headers["x-forgejo-signature"];
  if (gitea !== undefined) return gitea.trim().toLowerCase();
  const hub = headers["x-hub-signature-256"];
  if (hub !== undefined) return hub.trim().toLowerCase().replace(/^sha256=/, "");
  return undefined;
}

export function verifySignature(rawBody: Buffer, secret: string, headers: Record<string, string | undefined>): Refusal | undefined {
  const claimed = claimedSignature(headers);
  if (claimed === undefined) return { status: 401, reason: "unsigned delivery (no X-Gitea-Signature or X-Hub-Signature-256)" };
  if (!HEX_SHA256.test(claimed)) return { status: 401, reason: "malformed signature" };
  const expected = createHmac("sha256", secret).update(rawBody).digest();
  if (!timingSafeEqual(expected, Buffer.from(claimed, "hex"))) return { status: 401, reason: "signature does not match the body" };
  return undefined;
}

/** The forge's id of the delivery: a replay carries the same one. */
export function deliveryIdOf(headers: Record<string, string | undefined>): string | undefined {
  const id = headers["x-gitea-delivery"] ?? headers["x-forgejo-delivery"] ?? headers["x-github-delivery"];
  return id !== undefined && /^[A-Za-z0-9._-]{1,100}$/.test(id) ? id : undefined;
}

export function eventOf(headers: Record<string, string | undefined>): string | undefined {
  return headers["x-gitea-event"] ?? headers["x-forgejo-event"] ?? headers["x-github-event"];
}

const userSchema = z.object({ login: z.string().min(1).max(100) }).loose();
const repositorySchema = z
  .object({
    full_name: z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, "is not owner/name"),
    clone_url: z.string().min(1),
    html_url: z.string().optional(),
  })
  .loose();

/** The part of Gitea's `issue_comment` payload the bridge reads; the rest is not looked at. */
const issueCommentSchema = z
  .object({
    action: z.string(),
    issue: z
      .object({
        number: z.number().int().positive(),
        state: z.string(),
        pull_request: z.object({}).loose().nullish(),
      })
      .loose(),
    comment: z.object({ id: z.number().int(), body: z.string().max(65_536), user: userSchema }).loose(),
    repository: repositorySchema,
    sender: userSchema.optional(),
  })
  .loose();
export type IssueComment = z.infer<typeof issueCommentSchema>;

export type CommentDecision =
  | { kind: "ignore"; reason: string }
  | { kind: "refuse"; reason: string; reply: string }
  | { kind: "run"; mode: TriggerMode; pr: number; repository: string; cloneUrl: string; commenter: string };

/** A payload the bridge can act on, or why it cannot (400). */
export function parseIssueComment(body: unknown): { event: IssueComment } | { refusal: Refusal } {
  const parsed = issueCommentSchema.safeParse(body);
  if (parsed.success) return { event: parsed.data };
  const issue = parsed.error.issues[0];
  return { refusal: { status: 400, reason: `not an issue_comment payload: ${issue ? `${issue.path.join(".") || "(body)"}: ${issue.message}` : "invalid"}` } };
}

/**
 * What a comment asks for. Only a new comment on an open pull request by someone other than the bridge
 * itself counts; a comment that merely mentions the trigger gets the trigger's own refusal as a reply,
 * and any other comment is none of the bridge's business (no reply: it would answer every review).
 */
export function decideComment(event: IssueComment, botLogin: string): CommentDecision {
  const commenter = event.comment.user.login;
  if (event.action !== "created") return { kind: "ignore", reason: `comment ${event.action}, not created` };
  if (commenter === botLogin) return { kind: "ignore", reason: "the bridge's own comment" };
  if (!event.issue.pull_request) return { kind: "ignore", reason: `#${event.issue.number} is an issue, not a pull request` };
  const trigger = parseTrigger(event.comment.body);
  if (!trigger.accepted) {
    if (!event.comment.body.toLowerCase().includes(TRIGGER_FORMS.cold)) return { kind: "ignore", reason: "not a trigger" };
    return { kind: "refuse", reason: trigger.reason, reply: `@${commenter}: no run started: ${trigger.reason}.` };
  }
  if (event.issue.state !== "open") {
    return { kind: "refuse", reason: `#${event.issue.number} is ${event.issue.state}`, reply: `@${commenter}: no run started: this pull request is ${event.issue.state}.` };
  }
  return { kind: "run", mode: trigger.mode, pr: event.issue.number, repository: event.repository.full_name, cloneUrl: event.repository.clone_url, commenter };
}

/** Like Prow's trigger: only those who may push start runs of a PR's code on the CI's machines. */
export function isTrusted(permission: string): boolean {
  return permission === "admin" || permission === "write" || permission === "owner";
}

export function untrustedReply(commenter: string, repository: string): string {
  return `@${commenter}: only collaborators with write access to ${repository} can start runs here. Ask one of them to comment \`${TRIGGER_FORMS.cold}\`.`;
}

/** A remote's identity for matching a repository to its catalogue entry: host and path, no scheme, no `.git`. */
export function remoteKey(url: string): string {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/]*@)?([^/]+)(\/.*?)?(?:\.git)?\/*$/i.exec(url.trim());
  if (!match) return url.trim().replace(/(\.git)?\/*$/, "");
  return `${match[1]!.toLowerCase()}${(match[2] ?? "").toLowerCase()}`;
}
