// The memory sessions hold for messages not yet acted on — options waiting for their
// command, a command frame still arriving — counted agent-wide. Each session is bounded
// on its own (maxOptionBytes, maxArgvBytes, the frame limits); this bounds their sum, so
// that many sessions together, authenticated or not, cannot exhaust the agent's memory.
export class PendingMemory {
  private used = 0;

  constructor(public limit: number) {}

  /** Takes `bytes` from the budget; false (and nothing taken) when there is not that much left. */
  reserve(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  get bytesUsed(): number {
    return this.used;
  }
}
