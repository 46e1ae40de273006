// Connects to WorkPulse with the real socket.io-client and prints what happens, one JSON object
// per line: {"type": "connect"}, {"type": "connect_error", "message", "data"} (then exits 1),
// {"type": "event", "name", "data"}. Usage: node listen.mjs URL ACCESS_TOKEN
import { io } from "socket.io-client";

const [url, token] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const socket = io(url, { auth: { token }, reconnection: false });
socket.on("connect", () => print({ type: "connect" }));
socket.on("connect_error", (err) => {
  print({ type: "connect_error", message: err.message, data: err.data ?? null });
  process.exit(1);
});
socket.onAny((name, data) => print({ type: "event", name, data }));
socket.on("disconnect", (reason) => {
  print({ type: "disconnect", reason });
  process.exit(0);
});
