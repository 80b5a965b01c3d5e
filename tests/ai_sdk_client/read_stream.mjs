// Reads a UI message stream (the body of an HTTP answer) from stdin with the AI SDK's own
// parser and message builder, in the major named by the first argument (ai, ai-v6, ai-v5):
// every `data:` line is validated against that major's chunk schema, and the message that
// `useChat` would show is built from the chunks. Prints {"chunks", "message", "errors"}: the
// error parts' texts, as `useChat` reports them. Exits non-zero with the SDK's error when it
// rejects the stream.
const sdk = await import(process.argv[2] ?? "ai");

let text = "";
process.stdin.setEncoding("utf8");
for await (const piece of process.stdin) text += piece;

const chunks = [];
const parsed = sdk
  .parseJsonEventStream({ stream: new Response(text).body, schema: sdk.uiMessageChunkSchema })
  .pipeThrough(
    new TransformStream({
      transform(result, controller) {
        if (!result.success) throw result.error;
        chunks.push(result.value);
        controller.enqueue(result.value);
      },
    }),
  );

let message = null;
const errors = [];
for await (const snapshot of sdk.readUIMessageStream({
  stream: parsed,
  onError: (error) => errors.push(error.message),
})) {
  message = snapshot;
}
process.stdout.write(JSON.stringify({ chunks, message, errors }));
