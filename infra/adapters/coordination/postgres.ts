import { Pool, PoolClient } from "pg";
import type { LeasedCanonical } from "../../config";
import { assertRecipeName, runStackNameSchema } from "../../naming";
import { DeadlineError } from "../health";
import { thisHost } from "../liveness";
import { Coordination, HEARTBEAT_EXPIRY_MS, Holder, Lease, leaseSchema, Registration, TakeResult } from "./types";

/**
 * Coordination through one PostgreSQL that several runners on several hosts share: leases and run
 * registrations are rows, locks are session advisory locks (released by the server when the holder's
 * connection dies) with a row naming the holder. A holder is alive while its heartbeat is younger
 * than the heartbeat expiry by the database's own clock — never by pid, which means nothing on
 * another host. The URL's password never appears in an error or a log line.
 */
export const SCHEMA_VERSION = 1;

const SCHEMA = [
  `create table if not exists warmstack_schema (version integer not null)`,
  `create table if not exists warmstack_leases (
     recipe text primary key, holder text not null, host text not null, pid integer,
     taken_at timestamptz not null default now(), heartbeat_at timestamptz not null default now(),
     canonical jsonb not null, volumes jsonb)`,
  `create table if not exists warmstack_runs (
     stack text primary key, host text not null, pid integer not null,
     started_at timestamptz not null default now(), heartbeat_at timestamptz not null default now())`,
  `create table if not exists warmstack_locks (
     name text primary key, host text not null, pid integer not null, since timestamptz not null default now())`,
];

interface LeaseRow {
  recipe: string;
  holder: string;
  host: string;
  pid: number | null;
  taken_at: Date;
  heartbeat_at: Date;
  canonical: unknown;
  volumes: unknown;
  age_ms: number;
}

interface RunRow {
  stack: string;
  host: string;
  pid: number;
  started_at: Date;
  heartbeat_at: Date;
  age_ms: number;
}

/** host:port/database of a postgres URL: what an error may say about it. */
export function describeDatabase(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}${parsed.port ? `:${parsed.port}` : ""}${parsed.pathname}`;
  } catch {
    return "(an unparsable postgres URL)";
  }
}

export class PostgresCoordination implements Coordination {
  readonly kind = "postgres" as const;
  readonly where: string;
  private readonly pool: Pool;
  private ready?: Promise<void>;

  constructor(
    url: string,
    private readonly expiryMs = HEARTBEAT_EXPIRY_MS,
  ) {
    this.where = `postgres ${describeDatabase(url)}`;
    // Idle connections go, so a provider process that is done is not kept alive by its pool.
    this.pool = new Pool({ connectionString: url, max: 4, idleTimeoutMillis: 5_000, connectionTimeoutMillis: 10_000, allowExitOnIdle: true });
    this.pool.on("error", () => undefined);
  }

  /** The schema, made once per process; one of a newer warmstack is refused, naming both versions. */
  private schema(): Promise<void> {
    this.ready ??= (async () => {
      await this.query("select pg_advisory_lock(hashtext('warmstack-schema'))");
      try {
        for (const statement of SCHEMA) await this.query(statement);
        const { rows } = await this.query<{ version: number }>("select version from warmstack_schema");
        if (rows.length === 0) await this.query("insert into warmstack_schema (version) values ($1)", [SCHEMA_VERSION]);
        else if (rows[0]!.version > SCHEMA_VERSION) {
          throw new Error(`the coordination database ${this.where} has schema version ${rows[0]!.version}, newer than this warmstack's ${SCHEMA_VERSION}: upgrade warmstack on this runner`);
        }
      } finally {
        await this.query("select pg_advisory_unlock(hashtext('warmstack-schema'))");
      }
    })();
    return this.ready;
  }

  private async query<R extends object = Record<string, unknown>>(text: string, values: unknown[] = []) {
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw this.described(error);
    }
  }

  /** A driver error in words that name the database, never its URL's password. */
  private described(error: unknown): Error {
    const code = (error as { code?: string }).code;
    const message = error instanceof Error ? error.message : String(error);
    if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "ETIMEDOUT" || /timeout/i.test(message)) {
      return new Error(`the coordination database ${this.where} cannot be reached (${code ?? message})`);
    }
    if (code === "28P01" || code === "28000") return new Error(`the coordination database ${this.where} refused the login (${code}: wrong user or password)`);
    if (code === "3D000") return new Error(`the coordination database ${this.where} does not exist (${code})`);
    return new Error(`the coordination database ${this.where}: ${message}`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  isLive(holder: Holder): boolean {
    if (holder.heartbeatAgeMs !== undefined) return holder.heartbeatAgeMs < this.expiryMs;
    return holder.heartbeatAt === undefined ? true : Date.now() - Date.parse(holder.heartbeatAt) < this.expiryMs;
  }

  // Locks: an advisory lock on a connection of its own, held for the work; the row names the holder.

  async withLock<T>(name: string, options: { what: string; timeoutMs: number }, work: () => Promise<T>): Promise<T> {
    await this.schema();
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.described(error);
    }
    try {
      const deadline = Date.now() + options.timeoutMs;
      for (;;) {
        const { rows } = await client.query<{ locked: boolean }>("select pg_try_advisory_lock(hashtext($1)) as locked", [name]);
        if (rows[0]!.locked) break;
        if (Date.now() >= deadline) {
          const holder = await client.query<{ host: string; pid: number; since: Date }>("select host, pid, since from warmstack_locks where name = $1", [name]);
          const who = holder.rows[0] ? `pid ${holder.rows[0].pid} on ${holder.rows[0].host} since ${holder.rows[0].since.toISOString()}` : "a runner whose name is not recorded";
          throw new DeadlineError(options.what, options.timeoutMs, `${this.where} lock ${name} held by ${who}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 200));
      }
      await client.query("insert into warmstack_locks (name, host, pid) values ($1, $2, $3) on conflict (name) do update set host = excluded.host, pid = excluded.pid, since = now()", [
        name,
        thisHost(),
        process.pid,
      ]);
      try {
        return await work();
      } finally {
        await client.query("delete from warmstack_locks where name = $1 and host = $2 and pid = $3", [name, thisHost(), process.pid]);
        await client.query("select pg_advisory_unlock(hashtext($1))", [name]);
      }
    } finally {
      client.release();
    }
  }

  // Leases

  private leaseOf(row: LeaseRow): Lease & { heartbeatAgeMs: number } {
    const lease = leaseSchema.safeParse({
      recipe: row.recipe,
      stack: row.holder,
      host: row.host,
      ...(row.pid === null ? {} : { pid: row.pid }),
      takenAt: row.taken_at.toISOString(),
      heartbeatAt: row.heartbeat_at.toISOString(),
      canonical: row.canonical,
      ...(row.volumes === null ? {} : { volumes: row.volumes }),
    });
    if (!lease.success) throw new Error(`the lease of ${row.recipe} in ${this.where} is not a valid lease; delete its row once no quick run of it is running, after restoring the canonical`);
    return { ...lease.data, heartbeatAgeMs: Number(row.age_ms) };
  }

  private static readonly LEASE_COLUMNS = "recipe, holder, host, pid, taken_at, heartbeat_at, canonical, volumes, extract(epoch from now() - heartbeat_at) * 1000 as age_ms";

  async readLease(recipe: string): Promise<Lease | null> {
    await this.schema();
    const { rows } = await this.query<LeaseRow>(`select ${PostgresCoordination.LEASE_COLUMNS} from warmstack_leases where recipe = $1`, [assertRecipeName(recipe)]);
    return rows[0] ? this.leaseOf(rows[0]) : null;
  }

  async listLeases(): Promise<Lease[]> {
    await this.schema();
    const { rows } = await this.query<LeaseRow>(`select ${PostgresCoordination.LEASE_COLUMNS} from warmstack_leases order by recipe`);
    return rows.map((row) => this.leaseOf(row));
  }

  async tryTakeLease(recipe: string, stack: string, canonical: LeasedCanonical): Promise<TakeResult> {
    await this.schema();
    const inserted = await this.query<LeaseRow>(
      `insert into warmstack_leases (recipe, holder, host, pid, canonical) values ($1, $2, $3, $4, $5)
       on conflict (recipe) do nothing returning ${PostgresCoordination.LEASE_COLUMNS}`,
      [assertRecipeName(recipe), stack, thisHost(), process.pid, JSON.stringify(canonical)],
    );
    if (inserted.rows[0]) return { taken: true, lease: this.leaseOf(inserted.rows[0]), adopted: false };
    const holder = await this.readLease(recipe);
    if (holder === null) return this.tryTakeLease(recipe, stack, canonical);
    if (holder.stack === stack) return { taken: true, lease: holder, adopted: true };
    return { taken: false, holder };
  }

  async recordLeasedVolumes(recipe: string, stack: string, volumes: string[]): Promise<void> {
    await this.schema();
    const { rowCount } = await this.query("update warmstack_leases set volumes = $3 where recipe = $1 and holder = $2", [assertRecipeName(recipe), stack, JSON.stringify(volumes)]);
    if (rowCount === 0) throw new Error(`the lease of canonical ${recipe} is not held by ${stack}`);
  }

  async heartbeatLease(recipe: string, stack: string): Promise<void> {
    await this.schema();
    await this.query("update warmstack_leases set heartbeat_at = now() where recipe = $1 and holder = $2", [assertRecipeName(recipe), stack]);
  }

  async releaseLease(recipe: string, stack: string): Promise<boolean> {
    await this.schema();
    const { rowCount } = await this.query("delete from warmstack_leases where recipe = $1 and holder = $2", [assertRecipeName(recipe), stack]);
    return (rowCount ?? 0) > 0;
  }

  // Registrations

  async register(stack: string, pid = process.pid): Promise<Registration> {
    await this.schema();
    const { rows } = await this.query<RunRow>(
      `insert into warmstack_runs (stack, host, pid) values ($1, $2, $3)
       on conflict (stack) do update set host = excluded.host, pid = excluded.pid, heartbeat_at = now()
       returning stack, host, pid, started_at, heartbeat_at, 0 as age_ms`,
      [runStackNameSchema.parse(stack), thisHost(), pid],
    );
    return registrationOf(rows[0]!);
  }

  async heartbeat(stack: string): Promise<void> {
    await this.schema();
    await this.query("update warmstack_runs set heartbeat_at = now() where stack = $1", [stack]);
  }

  async unregister(stack: string): Promise<void> {
    await this.schema();
    await this.query("delete from warmstack_runs where stack = $1", [stack]);
  }

  async listRegistrations(): Promise<Registration[]> {
    await this.schema();
    const { rows } = await this.query<RunRow>("select stack, host, pid, started_at, heartbeat_at, extract(epoch from now() - heartbeat_at) * 1000 as age_ms from warmstack_runs order by stack");
    return rows.map(registrationOf);
  }
}

/** A registration as judged rows carry it: with its heartbeat's age by the database's clock. */
function registrationOf(row: RunRow): Registration & { heartbeatAgeMs: number } {
  return { stack: row.stack, host: row.host, pid: row.pid, startedAt: row.started_at.toISOString(), heartbeatAt: row.heartbeat_at.toISOString(), heartbeatAgeMs: Number(row.age_ms) };
}
