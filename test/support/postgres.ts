import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Client } from "pg";
import { bed } from "./bed";

/**
 * The bed's PostgreSQL (test/bed/steps/postgres.sh): a database of a test's own, so suites never
 * see each other's rows, dropped afterwards. The password is read from the bed's 0600 file.
 */
export interface BedPostgres {
  host: string;
  port: number;
  user: string;
  database: string;
  passwordFile: string;
}

export function bedPostgres(): BedPostgres {
  const postgres = (bed() as unknown as { postgres?: BedPostgres }).postgres;
  if (!postgres) throw new Error("bed.json has no postgres: run test/bed/setup.sh postgres describe");
  return postgres;
}

export function postgresPassword(): string {
  return readFileSync(bedPostgres().passwordFile, "utf8").trim();
}

export function postgresUrl(database = bedPostgres().database): string {
  const pg = bedPostgres();
  return `postgres://${pg.user}:${encodeURIComponent(postgresPassword())}@${pg.host}:${pg.port}/${database}`;
}

/** The same database as a URL without its password: what a runner gets when PGPASSWORD or PGPASSFILE carries it. */
export function postgresUrlWithoutPassword(database: string): string {
  const pg = bedPostgres();
  return `postgres://${pg.user}@${pg.host}:${pg.port}/${database}?sslmode=disable`;
}

export async function scratchDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `wstest_${randomBytes(4).toString("hex")}`;
  const admin = new Client({ connectionString: postgresUrl() });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: postgresUrl(name),
    name,
    drop: async () => {
      const client = new Client({ connectionString: postgresUrl() });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
