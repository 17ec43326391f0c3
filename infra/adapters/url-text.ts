/**
 * A URL as a message or progress line may show it: a password in it (postgres://user:pw@host/db, a
 * token in an https remote) becomes "***", so operators can still see which backend or remote it was.
 */
export function withoutCredentials(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL: a path, say, which carries no credentials of its own; anything with an @ is cut.
    return url.includes("@") ? `(a URL that cannot be shown: ${url.slice(url.lastIndexOf("@") + 1)})` : url;
  }
  if (parsed.password !== "") parsed.password = "***";
  return parsed.toString();
}
