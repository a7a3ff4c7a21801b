// Runs tests/js/sio_recovery_scenario.js under Node with the official socket.io-client.
// Usage: node sio_recovery.mjs '<config JSON>' ; prints one JSON object (or {"error"}).
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const source = readFileSync(new URL("./sio_recovery_scenario.js", import.meta.url), "utf8");
const recoveryScenario = new Function(`${source}; return recoveryScenario;`)();
try {
  const out = await recoveryScenario(io, JSON.parse(process.argv[2]));
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
} catch (err) {
  process.stdout.write(JSON.stringify({ error: String(err && err.stack || err) }) + "\n");
  process.exit(1);
}
