import { mkdir, readFile } from "node:fs/promises";
import * as path from "node:path";
import { writeFileAtomic } from "../../infra/adapters/atomic-file";
import { EMPTY_QUEUE, QueueState, queueStateSchema } from "./queue";

/**
 * The queue on disk (`<stateDir>/bridge/queue.json`), so a restarted bridge loses no queued run and
 * knows which one was in flight. One bridge writes it; its updates are applied one after another and
 * each is written atomically before the next begins.
 */
export class QueueStore {
  private state: QueueState | undefined;
  private pending: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  static at(stateDir: string): QueueStore {
    return new QueueStore(path.join(stateDir, "bridge", "queue.json"));
  }

  async read(): Promise<QueueState> {
    if (this.state) return this.state;
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      return (this.state = EMPTY_QUEUE);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`the bridge's queue ${this.file} is not JSON; move it aside to start with an empty queue`);
    }
    const checked = queueStateSchema.safeParse(parsed);
    if (!checked.success) throw new Error(`the bridge's queue ${this.file} is not one this warmstack reads (${checked.error.issues[0]?.path.join(".")}: ${checked.error.issues[0]?.message})`);
    return (this.state = checked.data);
  }

  /** Applies a change and persists it; changes never interleave. */
  update<T>(change: (state: QueueState) => { state: QueueState; value: T }): Promise<T> {
    const next = this.pending.then(async () => {
      const { state, value } = change(await this.read());
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.file, `${JSON.stringify(state, null, 1)}\n`);
      this.state = state;
      return value;
    });
    this.pending = next.catch(() => undefined);
    return next;
  }
}
