// The client's heartbeat watchdog: a connection that sent nothing (not even a ping) for longer
// than the server's own heartbeat timeout is dead, even if the socket has not noticed.

type Timer = ReturnType<typeof setTimeout>;

export class Watchdog {
  private timer: Timer | undefined;

  /**
   * Calls `onSilent(silentMs)` once the last frame is `limitMs` old. `lastFrameAt()` returns
   * undefined when there is nothing to watch any more. One timer, re-armed for the remainder.
   */
  arm(limitMs: number, lastFrameAt: () => number | undefined, onSilent: (silentMs: number) => void): void {
    this.clear();
    const check = () => {
      this.timer = undefined;
      const last = lastFrameAt();
      if (last === undefined) return;
      const silent = Date.now() - last;
      if (silent >= limitMs) {
        onSilent(silent);
        return;
      }
      this.timer = setTimeout(check, limitMs - silent);
    };
    this.timer = setTimeout(check, limitMs);
  }

  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
