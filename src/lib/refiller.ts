// Keeps a pool of ready things topped up in the background: one fill at a time, started again a moment after each take.
export class Refiller {
  private running?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private halted = true;

  /** `fill` tops the pool up, checking `stopped` between items; `pauseMs` keeps a refill off the heels of the work that took one. */
  constructor(private readonly fill: () => Promise<void>, private readonly pauseMs = 200) {}

  /** True until start() and after stop(): a fill in progress ends early. */
  get stopped(): boolean {
    return this.halted;
  }

  start(): void {
    this.halted = false;
    void this.now();
  }

  /** Fills now, or joins the fill under way; resolves once it is done. */
  now(): Promise<void> {
    this.running ??= this.fill().finally(() => (this.running = undefined));
    return this.running;
  }

  /** After a take: fills again after the pause (one timer however many takes). */
  soon(): void {
    if (this.halted || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.now();
    }, this.pauseMs);
    this.timer.unref();
  }

  /** No more fills; resolves once the one under way has ended. */
  async stop(): Promise<void> {
    this.halted = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
