import { pathToFileURL } from "node:url";
const { connect } = await import(pathToFileURL(process.env.RTGW_CLIENT).href);
const socketioUrl = import.meta.resolve("socket.io-client");
const out = {};
for (const t of ["sse", "auto", "sse", "auto"]) {
  const times = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    const c = connect({ url: process.argv[2], namespace: "/chat", socketioUrl, transport: t, closeTimeout: 500, upgradeDelay: Number(process.argv[3] ?? 0) });
    await c.ready; times.push((performance.now() - t0).toFixed(1));
    await new Promise((r) => setTimeout(r, Number(process.argv[4] ?? 0)));
    await c.close();
  }
  console.log(t, times.join(" "));
}
