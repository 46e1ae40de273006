// Opens Socket.IO connections for bench/realtime/run.py and records when each SESSION_UPDATE
// arrives. Usage: node clients.mjs TARGETS.json [CONCURRENCY]
// TARGETS.json: [{"url": ..., "token": ...}, ...]. Prints one JSON line once every socket has
// connected (or failed): {ready, connected, failed, total_ms, connect_ms: [...]}; then, when
// stdin closes: {receipts: [[session_id, version, epoch_ms], ...]}.
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const targets = JSON.parse(readFileSync(process.argv[2], "utf8"));
const concurrency = Number(process.argv[3] ?? 50);
const now = () => performance.timeOrigin + performance.now();
const connectMs = [];
const receipts = [];
const sockets = [];
let failed = 0;

function connectOne({ url, token }) {
  return new Promise((resolve) => {
    const started = now();
    const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false });
    sockets.push(socket);
    socket.once("connect", () => {
      connectMs.push(now() - started);
      resolve();
    });
    socket.once("connect_error", () => {
      failed += 1;
      resolve();
    });
    socket.on("SESSION_UPDATE", (event) => {
      receipts.push([event.session.id, event.session.version, now()]);
    });
  });
}

let next = 0;
async function worker() {
  while (next < targets.length) {
    await connectOne(targets[next++]);
  }
}

const begun = now();
await Promise.all(Array.from({ length: concurrency }, worker));
const line = { ready: true, connected: connectMs.length, failed, total_ms: now() - begun };
process.stdout.write(JSON.stringify({ ...line, connect_ms: connectMs }) + "\n");
process.stdin.resume();
process.stdin.on("end", () => {
  for (const socket of sockets) socket.close();
  // Exit only once the (large) line is written: a pipe is written asynchronously.
  process.stdout.write(JSON.stringify({ receipts }) + "\n", () => process.exit(0));
});
