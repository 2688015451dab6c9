// ARM's paged lists: `{value, nextLink}` pages followed to the end, item by item or page by page.

export interface Page<T> {
  value?: T[];
  nextLink?: string | null;
}

export class Paged<T> implements AsyncIterable<T> {
  /** `fetchPage(undefined)` reads the first page; later calls get the previous page's nextLink. */
  constructor(private readonly fetchPage: (nextLink: string | undefined) => Promise<Page<T>>) {}

  async *byPage(): AsyncGenerator<T[]> {
    let next: string | undefined;
    do {
      const page = await this.fetchPage(next);
      yield page.value ?? [];
      next = page.nextLink ?? undefined;
    } while (next);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for await (const page of this.byPage()) yield* page;
  }

  async toArray(): Promise<T[]> {
    const all: T[] = [];
    for await (const page of this.byPage()) all.push(...page);
    return all;
  }
}
