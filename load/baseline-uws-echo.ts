// Baseline "uws-raw": a raw uWebSockets.js echo server — the physical limit of one thread.
// Every frame is sent straight back (same opcode); no parsing at all. PORT/HOST from env.
import uWS from "uWebSockets.js";

const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? 9001);

uWS
  .App()
  .ws("/*", {
    compression: uWS.DISABLED,
    maxPayloadLength: 1024 * 1024,
    idleTimeout: 0,
    maxBackpressure: 64 * 1024 * 1024,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary);
    },
  })
  .listen(HOST, PORT, (token) => {
    if (!token) {
      console.error(`baseline-uws-echo: cannot listen on ${HOST}:${PORT}`);
      process.exit(1);
    }
  });
