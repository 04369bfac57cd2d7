// Issue #21 item 3: the first frame of a connection cannot stall the main thread or leave memory
// behind. Ten maximal hostile first frames (1 MiB msgpack maps of ~131k keys, 1 MiB of JSON nested
// 524k deep) arrive on new connections while a connected client echoes: its worst echo stays
// within 50 ms of its worst echo before, every hostile connection gets 1009 (over
// MAX_CONNECT_BYTES, refused without decoding), and the gateway's RSS is back within 64 MiB of its
// baseline 10 s later. Also: the MAX_CONNECT_BYTES boundary, and the decoding limits in the workers.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connected, startGateway, TestClient, type Gateway } from "./harness.js";

const MIB = 1024 * 1024;

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error("no VmRSS");
  return Number(m[1]) * 1024;
}

// The attacker runs in a process of its own: building, masking and writing 10 MiB in this
// process would stall the bystander's own event loop and be measured as gateway delay.
const ATTACKER = `
import WebSocket from "ws";
const [url, count, bytes] = process.argv.slice(1);
function msgpackMap(size) {
  // as many distinct 6-char string keys (nil values) as fit
  const n = Math.floor((size - 5) / 8);
  const b = Buffer.alloc(5 + n * 8);
  b[0] = 0xdf;
  b.writeUInt32BE(n, 1);
  for (let i = 0, p = 5; i < n; i++, p += 8) {
    b[p] = 0xa6;
    b.write(i.toString(36).padStart(6, "0"), p + 1, "latin1");
    b[p + 7] = 0xc0;
  }
  return b;
}
const frames = [msgpackMap(+bytes), Buffer.from("[".repeat(bytes / 2) + "]".repeat(bytes / 2))];
const conns = [];
for (let i = 0; i < +count; i++) {
  const binary = i % 2 === 0;
  const ws = new WebSocket(binary ? url + "?encoding=msgpack" : url);
  ws.on("error", () => {});
  conns.push(new Promise((resolve) => {
    ws.on("open", () => resolve({ ws, binary, closed: new Promise((r) => ws.on("close", (code) => r(code))) }));
  }));
}
const open = await Promise.all(conns);
process.stdout.write("open\\n");
await new Promise((r) => process.stdin.once("data", r));
for (const c of open) c.ws.send(frames[c.binary ? 0 : 1], { binary: c.binary });
const codes = await Promise.all(open.map((c) => c.closed));
process.stdout.write(JSON.stringify(codes) + "\\n");
process.exit(0);
`;

async function echoLatencies(c: TestClient, n: number, until?: () => boolean): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n || (until !== undefined && !until()); i++) {
    const t0 = performance.now();
    const res = await c.request("echo", i, `e${i}`);
    out.push(performance.now() - t0);
    expect(res).toMatchObject({ ok: true, payload: i });
  }
  return out;
}

const maxBefore = (l: number[]): number => Math.max(...l);

/** One attack: ten 1 MiB first frames from another process while `bystander` echoes. */
async function attack(gw: Gateway, bystander: TestClient): Promise<{ codes: number[]; latencies: number[] }> {
  const attacker = spawn(process.execPath, ["--input-type=module", "-e", ATTACKER, gw.url, "10", String(MIB)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: attacker.stdout! })[Symbol.asyncIterator]();
  expect((await lines.next()).value).toBe("open");
  let done = false;
  const result = lines.next().then((r) => {
    done = true;
    return r.value as string;
  });
  const during = echoLatencies(bystander, 20, () => done);
  attacker.stdin!.write("go\n");
  const codes = JSON.parse(await result) as number[];
  const latencies = await during;
  await once(attacker, "exit");
  return { codes, latencies };
}

describe("hostile first frames", () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway({ WORKERS: "1", RATE_CONN_PER_IP: "100000/1s", RATE_RPC_PER_DEVICE: "100000/1s" });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("ten 1 MiB hostile first frames: 1009 each, the bystander's echo delayed < 50 ms, RSS back within 64 MiB", async () => {
    const bystander = await connected(gw, "hostile-bystander");
    await echoLatencies(bystander, 50); // warm-up
    const before = await echoLatencies(bystander, 20);
    const rss0 = rssBytes(gw.proc.pid!);

    // Best of three attacks: on a busy 2-core machine one scheduler hiccup can exceed 50 ms, but a
    // main thread that decodes the frames (~85 ms each) is late in every attack.
    const attempts: string[] = [];
    let best = Infinity;
    for (let i = 0; i < 3 && !(best < maxBefore(before) + 50); i++) {
      const { codes, latencies } = await attack(gw, bystander);
      expect(codes).toEqual(new Array(10).fill(1009));
      best = Math.min(best, Math.max(...latencies));
      attempts.push(`${Math.max(...latencies).toFixed(1)} ms (${latencies.length} echoes)`);
    }
    console.log(`[hostile] echo max before ${maxBefore(before).toFixed(1)} ms, during: ${attempts.join(", ")}`);
    expect(best).toBeLessThan(maxBefore(before) + 50);

    await new Promise((r) => setTimeout(r, 10_000));
    const rss1 = rssBytes(gw.proc.pid!);
    console.log(`[hostile] RSS before ${(rss0 / MIB).toFixed(1)} MiB, 10 s after ${(rss1 / MIB).toFixed(1)} MiB`);
    expect(rss1 - rss0).toBeLessThan(64 * MIB);
    expect((await bystander.request("echo", "after", "after")).payload).toBe("after");
    bystander.close();
  }, 60_000);

  it("a connect of exactly MAX_CONNECT_BYTES is accepted, one byte more → 1009 without a reply", async () => {
    const max = 65_536;
    const connect = (pad: number): string =>
      JSON.stringify({
        type: "req",
        id: "hello",
        method: "connect",
        params: { deviceId: "size-dev", role: "operator", pad: "x".repeat(pad) },
      });
    const exact = connect(max - connect(0).length);
    expect(Buffer.byteLength(exact)).toBe(max);
    const ok = new TestClient(gw.url);
    await ok.opened;
    ok.sendRaw(exact);
    expect(await ok.next()).toMatchObject({ id: "hello", ok: true });
    ok.close();

    const over = new TestClient(gw.url);
    await over.opened;
    over.sendRaw(connect(max + 1 - connect(0).length));
    expect(await over.waitClose()).toBe(1009);
    expect(over.frames).toEqual([]);
  });

  it("the maximal valid connect (256 agentIds of 128 chars, 4096-char token) fits the default bound", async () => {
    const agentIds = Array.from({ length: 256 }, (_, i) => `${i}`.padStart(128, "a"));
    const c = new TestClient(gw.url);
    await c.opened;
    const frame = JSON.stringify({
      type: "req",
      id: "hello",
      method: "connect",
      params: { deviceId: "d".repeat(128), role: "r".repeat(64), agentIds, auth: { token: "t".repeat(4096) } },
    });
    expect(Buffer.byteLength(frame)).toBeGreaterThan(36_000);
    c.sendRaw(frame);
    expect(await c.next()).toMatchObject({ id: "hello", ok: true });
    c.close();
  });

  it.each(["json", "msgpack"] as const)(
    "%s: after connect, a frame over the depth or collection limit is BAD_REQUEST and the connection stays",
    async (enc) => {
      const c = await connected(gw, `limits-${enc}`, {}, enc);
      let deep: unknown = 1;
      for (let i = 0; i < 64; i++) deep = [deep];
      const big = new Array<number>(100_001).fill(0);
      for (const params of [deep, { big }]) {
        c.send({ type: "req", id: "lim", method: "echo", params });
        // refused before the frame is built, so its id is not known: null
        const res = await c.next((f) => f.type === "res");
        expect(res).toMatchObject({ id: null, ok: false, error: { code: "BAD_REQUEST" } });
      }
      let fine: unknown = 1;
      for (let i = 0; i < 62; i++) fine = [fine];
      expect((await c.request("echo", fine, "fine")).payload).toEqual(fine);
      expect(c.closeCode).toBeUndefined();
      c.close();
    },
  );
});
