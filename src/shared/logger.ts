// One pino logger per thread, tagged with the thread's name. Never log per frame above debug.
import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export function createLogger(thread: string, level: LevelWithSilent): Logger {
  return pino({ level, base: { pid: process.pid, thread } });
}
