// synthia.js — kept so existing imports of /static/synthia.js keep working: the client is the
// synthia-client npm package (clients/js), built into ./synthia-client.js by `npm run build`.
// API and examples: docs/client.md.
export * from "./synthia-client.js";
