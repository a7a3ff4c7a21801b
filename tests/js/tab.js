// One browser tab of tests/test_browser_tabs.py: window.tab.start({transport, room, name})
// connects with rtgateway.js, joins, and records what the tab sees; publish(room, from) sends
// one message and resolves to its ack's offset (or "error:<code>"). Loaded with
// context.add_init_script, so every page of the context has it.
window.tab = {
  client: null,
  joinedMs: null, // ms from connect() to the join's ack
  joinedOn: null, // {transport, sharing} of the client when the join was acked
  joinError: null,
  received: [], // the `from` of every message delivered, in order
  stalled: [], // every `stalled` event
  moves: [], // `transport` and `attempt` events, in order: why a tab is on the transport it is on
  async start({ transport, room, name, options = {} }) {
    const { connect } = await import("/client/rtgateway.js");
    const began = performance.now();
    const client = connect({ namespace: "/chat", transport, name, ...options });
    this.client = client;
    client.on("message", (envelope) => this.received.push(envelope.data?.from));
    client.on("stalled", (report) => this.stalled.push(report));
    client.on("transport", (now) => this.moves.push(`transport ${now}`));
    client.on("attempt", ({ transport: tried, outcome, detail }) => this.moves.push(`${tried} ${outcome}${detail ? ` (${detail})` : ""}`));
    try {
      await client.join(room);
      this.joinedMs = performance.now() - began;
      this.joinedOn = { transport: client.transport, sharing: client.sharing };
    } catch (err) {
      this.joinError = err.code ?? String(err);
    }
  },
  async publish(room, from) {
    try {
      const result = await this.client.publish(room, { from, text: `hello from ${from}` });
      return result.offset;
    } catch (err) {
      return `error:${err.code ?? err}`;
    }
  },
};
