// A counting semaphore: at most `limit` holders at once, the rest wait in order.
export class Semaphore {
  private waiting: (() => void)[] = [];
  private held = 0;

  constructor(private readonly limit: number) {}

  async acquire(): Promise<void> {
    if (this.held < this.limit) {
      this.held++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held--;
  }
}
