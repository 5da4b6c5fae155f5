// An app on the openai npm package (7.55.0), run by tests/clients/test_openai_js.py.
//
//   node openai_js.mjs SCENARIO...
//
// It talks to the sidecar's OpenAI-compatible API at OPENAI_BASE_URL with OPENAI_API_KEY (the
// sidecar's DAPR_API_TOKEN), as any app on this SDK does, and prints one line `RESULT {json}`: per
// scenario, what the app got, or the error it caught (status, code, param, message).
//
// The package is loaded from the npm project PARLEY_JS_MODULES (tests/clients/install.sh puts it
// under $PARLEY_CACHE), not from beside this file.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.PARLEY_JS_MODULES, "package.json"));
const { default: OpenAI } = require("openai");

const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY,
                            maxRetries: 0 });
const HELLO = [{ role: "user", content: "hello from node" }];
const WEATHER = { type: "function", function: { name: "get_weather", description: "The weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } };

const scenarios = {
  async create() {
    const got = await client.chat.completions.create({ model: "echo", messages: HELLO });
    return { content: got.choices[0].message.content, finish: got.choices[0].finish_reason, usage: got.usage };
  },
  async stream() {
    const stream = await client.chat.completions.create({ model: "echo", messages: HELLO, stream: true,
                                                          stream_options: { include_usage: true } });
    const pieces = [];
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.choices.length && chunk.choices[0].delta.content) pieces.push(chunk.choices[0].delta.content);
      if (chunk.usage) usage = chunk.usage;
    }
    return { pieces, usage };
  },
  async tools() {
    const got = await client.chat.completions.create({ model: "echo", messages: HELLO, tools: [WEATHER] });
    return { calls: got.choices[0].message.tool_calls, finish: got.choices[0].finish_reason };
  },
  async streamHelper() {
    // the SDK's own stream helper assembles the streamed answer, tool calls included
    const runner = client.chat.completions.stream({ model: "llm", messages: HELLO, tools: [WEATHER] });
    let fragments = 0;
    runner.on("tool_calls.function.arguments.delta", () => { fragments += 1; });
    const final = await runner.finalChatCompletion();
    return { calls: final.choices[0].message.tool_calls, fragments };
  },
  async llmStream() {
    const stream = await client.chat.completions.create({ model: "llm", messages: HELLO, stream: true });
    const pieces = [];
    for await (const chunk of stream) {
      if (chunk.choices.length && chunk.choices[0].delta.content) pieces.push(chunk.choices[0].delta.content);
    }
    return { pieces };
  },
  async models() {
    const page = await client.models.list();
    return { ids: page.data.map((m) => m.id).sort() };
  },
  async unknown() {
    return client.chat.completions.create({ model: "no-such-llm", messages: HELLO });
  },
  async badN() {
    return client.chat.completions.create({ model: "echo", messages: HELLO, n: 2 });
  },
  async badKey() {
    const wrong = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: "wrong", maxRetries: 0 });
    return wrong.chat.completions.create({ model: "echo", messages: HELLO });
  },
  async abandon() {
    // read one chunk of a long stream, then stop: the SDK aborts the request
    const stream = await client.chat.completions.create({ model: "llm", messages: HELLO, stream: true });
    for await (const chunk of stream) {
      return { first: chunk.choices[0].delta };
    }
    return { first: null };
  },
};

const result = {};
for (const name of process.argv.slice(2)) {
  try {
    result[name] = { ok: true, result: await scenarios[name]() };
  } catch (err) {
    result[name] = { ok: false, error: { name: err.constructor.name, status: err.status ?? null,
                                          code: err.code ?? null, param: err.param ?? null,
                                          message: String(err.message) } };
  }
}
console.log(`RESULT ${JSON.stringify(result)}`);
