/** Progress lines for long steps: what, which stack or app, and the elapsed time. */
export class Progress {
  private readonly started = Date.now();

  constructor(private readonly quiet: boolean) {}

  elapsedMs(): number {
    return Date.now() - this.started;
  }

  say(what: string): void {
    if (!this.quiet) process.stderr.write(`[warmstack ${(this.elapsedMs() / 1000).toFixed(1)}s] ${what}\n`);
  }

  /** Passes engine output through line by line, tagged with the stack it belongs to. */
  engineOutput(stack: string): (chunk: string) => void {
    let pending = "";
    return (chunk) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) this.say(`${stack}: ${line}`);
    };
  }
}
