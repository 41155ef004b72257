// A small consumer of the published package, type-checked with `tsc --strict --noEmit` by
// test/package.test.mjs against the packed tarball's .d.ts (not the sources).
import { connect, SynthiaError, type AnalysisOutcome, type ServerErrorCode } from "synthia-client";
import WebSocket from "ws";

export async function main(token: string): Promise<string | undefined> {
  const client = await connect({ url: "ws://127.0.0.1:8000/ws", getToken: () => token, WebSocket });
  client.on("analysis.partial", (e) => console.log(e.partial.face_shape, e.seq.toFixed(0)));
  client.on("notification", (n) => console.log(n.title.toUpperCase()));
  client.on("auth_error", ({ code, error }) => console.log(code, error.code));
  client.on("ready", (r) => console.log(r.node, r.lost.length));
  const pong = await client.ping();
  console.log(pong.ts.toFixed(3));
  const quiz = await client.quiz("en");
  for (const q of quiz.questions) await quiz.answer(q.id, q.options[0]!.id);
  const submitted = await quiz.submit();
  console.log(submitted.channel.startsWith("analysis:"));
  try {
    const result: AnalysisOutcome = await client.analyzeImage(new Uint8Array([1, 2, 3]), {
      contentType: "image/jpeg",
      onProgress: (sent, size) => console.log(sent / size),
      onPartial: (partial) => console.log(partial),
    });
    return result.model;
  } catch (err) {
    if (err instanceof SynthiaError) {
      const code: string = err.code;
      const known: ServerErrorCode | undefined = code === "too_large" ? code : undefined;
      console.log(known, err.temporary, err.retryAfter);
    }
  } finally {
    client.close();
  }
  // @ts-expect-error: unknown ops are refused by the types
  await client.send("no.such.op", {});
  // @ts-expect-error: fields are typed per op
  await client.send("subscribe", { channel: 42 });
  return undefined;
}
