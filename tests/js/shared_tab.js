// One browser tab of tests/test_browser_shared.py: window.tab.start({transport, room, name,
// options}) connects with rtgateway.js and joins; burst(room, from, count) publishes `count`
// messages at once (the outbox keeps their order); received lists every message delivered, in
// order. Loaded with context.add_init_script, so every page of the context has it.
window.tab = {
  client: null,
  joined: false,
  joinError: null,
  received: [], // {from, n, offset} of every message delivered, in order
  errors: [], // `error` events
  async start({ transport, room, name, options = {} }) {
    const { connect } = await import("/client/rtgateway.js");
    const client = connect({ namespace: "/chat", transport, name, ...options });
    this.client = client;
    client.on("message", (envelope) => this.received.push({ from: envelope.data?.from, n: envelope.data?.n, offset: envelope.offset }));
    client.on("error", (err) => this.errors.push(err.code));
    try {
      await client.join(room);
      this.joined = true;
    } catch (err) {
      this.joinError = err.code ?? String(err);
    }
    return { sharing: client.sharing, transport: client.transport, joined: this.joined, joinError: this.joinError };
  },
  async burst(room, from, first, count) {
    const sent = [];
    for (let n = first; n < first + count; n++) sent.push(this.client.publish(room, { from, n }));
    const acks = await Promise.all(sent);
    return acks.map((ack) => ack.offset);
  },
};
