import { readdir, readFile } from "node:fs/promises";
import * as path from "node:path";
import { Client } from "pg";
import { describeDatabase } from "./coordination";

/**
 * The lock records the Pulumi CLI keeps for a stack in a DIY backend, as it wrote them (JSON naming
 * its pid and host), unjudged: `.pulumi/locks/<org>/<project>/<stack>/<id>.json` under a file
 * backend's directory, or rows of that key in a postgres backend's table. Other backends keep their
 * locks where this cannot see them: none are listed.
 */
export interface PulumiLockRecord {
  /** The file or row key, for messages. */
  where: string;
  /** Its content; undefined when it could not be read. */
  text?: string;
}

export async function pulumiLockRecords(backendUrl: string, stack: string): Promise<PulumiLockRecord[]> {
  if (backendUrl.startsWith("file://")) return fileLockRecords(backendUrl.slice("file://".length), stack);
  if (/^postgres(ql)?:\/\//.test(backendUrl)) return postgresLockRecords(backendUrl, stack);
  return [];
}

async function fileLockRecords(root: string, stack: string): Promise<PulumiLockRecord[]> {
  const locksDir = path.join(root, ".pulumi", "locks");
  const entries = await readdir(locksDir, { withFileTypes: true, recursive: true }).catch(() => []);
  const records: PulumiLockRecord[] = [];
  for (const entry of entries.filter((found) => found.isFile() && path.basename(found.parentPath) === stack && found.name.endsWith(".json"))) {
    const file = path.join(entry.parentPath, entry.name);
    records.push({ where: file, text: await readFile(file, "utf8").catch(() => undefined) });
  }
  return records;
}

const TABLE = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The CLI's postgres backend keeps every blob as a row of one table (`pulumi_state` unless `?table=`
 * names another): its key, and its bytes base64-encoded as `{"data": "…"}`.
 */
async function postgresLockRecords(backendUrl: string, stack: string): Promise<PulumiLockRecord[]> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(stack)) throw new Error(`stack name ${JSON.stringify(stack)} cannot name a lock`);
  const url = new URL(backendUrl);
  const table = url.searchParams.get("table") ?? "pulumi_state";
  if (!TABLE.test(table)) throw new Error(`PULUMI_BACKEND_URL names table ${JSON.stringify(table)}, which is not a plain table name`);
  url.searchParams.delete("table");
  const client = new Client({ connectionString: url.toString(), connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ key: string; encoded: string | null }>(`select key, data->>'data' as encoded from ${table} where key like $1`, [`%/.pulumi/locks/%/${stack}/%.json`]);
    return rows.map((row) => ({ where: `${describeDatabase(backendUrl)} ${row.key}`, text: row.encoded === null ? undefined : Buffer.from(row.encoded, "base64").toString("utf8") }));
  } catch (error) {
    // A table not made yet holds no lock.
    if ((error as { code?: string }).code === "42P01") return [];
    throw new Error(`the Pulumi backend ${describeDatabase(backendUrl)} could not be read for the locks of ${stack}: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
