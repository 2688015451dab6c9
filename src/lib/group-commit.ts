// Group commit: what is submitted while a commit runs goes into the next one, so a burst costs a few commits instead of one each.
export class GroupCommit<T> {
  private queue: { item: T; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing = false;

  /**
   * `commit` applies a batch all or nothing. A batch that fails is committed again item by item,
   * so one bad item fails alone.
   */
  constructor(private readonly commit: (items: T[]) => Promise<void>) {}

  submit(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.commit(batch.map((b) => b.item));
          for (const b of batch) b.resolve();
        } catch (e) {
          if (batch.length === 1) batch[0].reject(e);
          else for (const b of batch) await this.commit([b.item]).then(b.resolve, b.reject);
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}
