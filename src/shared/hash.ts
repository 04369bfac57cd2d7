// Stable shard choice: FNV-1a (32-bit) over the UTF-16 code units of the deviceId. The same
// deviceId maps to the same worker on every start and every host with the same WORKERS.
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function shardOf(deviceId: string, shards: number): number {
  return fnv1a32(deviceId) % shards;
}
