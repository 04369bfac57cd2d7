// The public connection id of the hello (`connId`) and EventBus.send: `<instanceId>-<n in base36>`,
// where n is the main thread's 32-bit connection number (the ring records' connId).

export function formatConnId(instanceId: string, n: number): string {
  return `${instanceId}-${n.toString(36)}`;
}

/** The connection number of an id issued by this process, or undefined for any other string. */
export function parseConnId(instanceId: string, connectionId: string): number | undefined {
  const dash = connectionId.lastIndexOf("-");
  if (dash < 0 || connectionId.slice(0, dash) !== instanceId) return undefined;
  const digits = connectionId.slice(dash + 1);
  if (!/^[0-9a-z]{1,7}$/.test(digits)) return undefined;
  return parseInt(digits, 36);
}
