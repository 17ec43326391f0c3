import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";

/**
 * Writes a file so that a reader sees the old content or the new, never a part: written aside,
 * flushed, then renamed over the old one. Mode 0600 by default: these files may hold credentials or
 * decide who holds what.
 */
export async function writeFileAtomic(file: string, content: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  // `wx`: never follow or reuse something already at the temporary name.
  const handle = await open(tmp, "wx", mode);
  try {
    try {
      // The creation mode is filtered by the umask; chmod is not.
      await handle.chmod(mode);
      await handle.writeFile(content, "utf8");
      // Flush before the rename, or a crash can leave the new name pointing at an empty file.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
}
