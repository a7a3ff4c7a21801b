// Runs one named scenario of a Node test script and prints its outcome as one JSON line
// (what tests/servers.py `node_outcome` reads): the result, or {error, code}; bounded in time.

export async function runScenario(scenarios, scenario, wait) {
  const deadline = setTimeout(() => {
    process.stdout.write(JSON.stringify({ error: `scenario ${scenario} timed out` }) + "\n");
    process.exit(2);
  }, wait);
  try {
    const result = await scenarios[scenario]();
    process.stdout.write(JSON.stringify(result) + "\n");
    clearTimeout(deadline);
    process.exit(0);
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err?.stack ?? err), code: err?.code }) + "\n");
    process.exit(1);
  }
}
